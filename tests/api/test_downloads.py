"""GET/HEAD /downloads/{token}: streaming, Range, quota, expiry, revocation, rate limits and metering."""

import time
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from api.app import create_app
from delivery.http_link import issue_link, link_url
from models.tables import Download, DownloadLink
from models.timestamps import utcnow
from tests.support.live_server import serving


def token_of(link: DownloadLink) -> str:
    return link_url(link).rsplit("/", 1)[1]


def new_link(session, export, **limits) -> str:
    link = issue_link(session, export_id=export.id, target_id=None, ttl_hours=1, **limits)
    session.commit()
    return token_of(link)


def downloads(session) -> list[Download]:
    session.expire_all()
    return list(session.exec(select(Download).order_by(Download.id)).all())


def test_a_live_link_streams_the_file_and_meters_every_byte(session, export_with_file):
    export, path = export_with_file
    token = new_link(session, export)
    response = TestClient(create_app()).get(f"/downloads/{token}")
    assert response.status_code == 200
    assert response.content == path.read_bytes()
    assert response.headers["content-length"] == str(path.stat().st_size)
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"] == f'"{export.rendered["sha256"]}"'
    assert f'filename="export-{export.id}.tif"' in response.headers["content-disposition"]
    (download,) = downloads(session)
    assert (download.bytes_sent, download.completed, download.range_start, download.range_end) == (
        path.stat().st_size, True, 0, path.stat().st_size - 1)
    assert download.client == "testclient" and download.finished_at >= download.started_at


def test_the_database_holds_no_usable_token(session, export_with_file):
    export, _ = export_with_file
    link = issue_link(session, export_id=export.id, target_id=None, ttl_hours=1)
    session.commit()
    token = token_of(link)
    assert len(token) >= 43
    assert token not in link.token_hash and token not in link.token_sealed


def test_range_requests_are_served_as_206_and_head_answers_without_a_body(session, export_with_file):
    export, path = export_with_file
    data = path.read_bytes()
    token = new_link(session, export)
    client = TestClient(create_app())

    part = client.get(f"/downloads/{token}", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == data[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    tail = client.get(f"/downloads/{token}", headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == data[-500:]
    rest = client.get(f"/downloads/{token}", headers={"Range": f"bytes={len(data) - 10}-"})
    assert rest.content == data[-10:]
    beyond = client.get(f"/downloads/{token}", headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
    stale = client.get(f"/downloads/{token}", headers={"Range": "bytes=0-9", "If-Range": '"another-version"'})
    assert stale.status_code == 200 and stale.content == data  # If-Range mismatch: the whole, current file

    head = client.head(f"/downloads/{token}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(data)) and head.headers["accept-ranges"] == "bytes"

    rows = downloads(session)
    assert [(d.range_start, d.range_end, d.bytes_sent, d.completed) for d in rows] == [
        (1000, 1999, 1000, True), (len(data) - 500, len(data) - 1, 500, True),
        (len(data) - 10, len(data) - 1, 10, True), (0, len(data) - 1, len(data), True),
    ]  # HEAD and the unsatisfiable range served no bytes and are not downloads


def test_the_quota_counts_whole_file_equivalents(session, export_with_file):
    export, path = export_with_file
    size = path.stat().st_size
    token = new_link(session, export, download_quota=2)
    client = TestClient(create_app())
    assert client.get(f"/downloads/{token}").status_code == 200  # one whole file
    for start in range(0, size // 2, 65536):  # half the file again, in small ranged reads: half a download
        assert client.get(f"/downloads/{token}", headers={"Range": f"bytes={start}-{start + 65535}"}).status_code == 206
    session.expire_all()
    assert session.exec(select(DownloadLink)).one().downloads_used == 1  # 1.5, rounded down
    assert client.get(f"/downloads/{token}", headers={"Range": f"bytes={size // 2}-"}).status_code == 206  # 2.0
    used_up = client.get(f"/downloads/{token}", headers={"Range": "bytes=0-99"})
    assert used_up.status_code == 410 and "served all of its 2 download(s)" in used_up.json()["detail"]
    session.expire_all()
    assert session.exec(select(DownloadLink)).one().downloads_used == 2


def test_unknown_tokens_are_404(geoship_home):
    response = TestClient(create_app()).get("/downloads/not-a-real-token")
    assert response.status_code == 404
    assert response.json()["detail"] == "unknown download link"


def test_expired_and_revoked_links_are_410_and_serve_nothing(session, export_with_file):
    export, _ = export_with_file
    expired = issue_link(session, export_id=export.id, target_id=None, ttl_hours=1)
    expired.expires_at = utcnow() - timedelta(seconds=1)
    revoked = issue_link(session, export_id=export.id, target_id=None, ttl_hours=1)
    revoked.revoked = True
    session.commit()
    client = TestClient(create_app())
    gone = client.get(f"/downloads/{token_of(expired)}")
    assert gone.status_code == 410 and "expired" in gone.json()["detail"]
    assert client.get(f"/downloads/{token_of(revoked)}").json()["detail"] == "this download link has been revoked"
    assert downloads(session) == []


def test_a_link_whose_file_is_gone_says_so(session, export_with_file):
    export, path = export_with_file
    token = new_link(session, export)
    path.unlink()
    response = TestClient(create_app()).get(f"/downloads/{token}")
    assert response.status_code == 404 and "no longer available" in response.json()["detail"]


def test_too_many_requests_for_one_user_get_429_with_retry_after(session, export_with_file, monkeypatch):
    monkeypatch.setenv("GEOSHIP_DOWNLOAD_REQUESTS_PER_MINUTE", "6")
    monkeypatch.setenv("GEOSHIP_DOWNLOAD_REQUEST_BURST", "2")
    from models.settings import get_settings

    get_settings.cache_clear()
    export, _ = export_with_file
    first, second = new_link(session, export), new_link(session, export)
    client = TestClient(create_app())
    assert client.get(f"/downloads/{first}").status_code == 200
    assert client.get(f"/downloads/{second}").status_code == 200  # the limit is the user's, across links
    limited = client.get(f"/downloads/{first}")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 10  # one request per 10 s at 6 a minute
    assert "too many requests" in limited.json()["detail"]
    assert len(downloads(session)) == 2


def test_the_byte_rate_limit_holds_within_ten_percent(session, export_with_file):
    export, path = export_with_file
    rate = 400_000  # bytes per second: the 2.3 MB file takes about 5.8 s
    token = new_link(session, export, byte_rate_limit=rate)
    with serving(create_app()) as base, httpx.stream("GET", f"{base}/downloads/{token}", timeout=30) as response:
        received, first_at = b"", None
        for chunk in response.iter_bytes():
            if first_at is None:
                first_at, first_len = time.monotonic(), len(chunk)
            received += chunk
        elapsed = time.monotonic() - first_at
    assert received == path.read_bytes()
    measured = (len(received) - first_len) / elapsed
    assert abs(measured - rate) / rate < 0.10, f"measured {measured:,.0f} B/s for a limit of {rate:,} B/s"
    (download,) = downloads(session)
    assert download.bytes_sent == len(received) and download.completed


def test_an_interrupted_download_resumes_with_range_into_an_identical_file(session, export_with_file):
    export, path = export_with_file
    data = path.read_bytes()
    token = new_link(session, export, byte_rate_limit=1_000_000, download_quota=1)
    with serving(create_app()) as base:
        received = b""
        with httpx.stream("GET", f"{base}/downloads/{token}", timeout=30) as response:
            for chunk in response.iter_bytes():
                received += chunk
                if len(received) >= len(data) // 3:
                    break  # the client goes away mid-download
        deadline = time.monotonic() + 10
        while not (rows := downloads(session)) or rows[0].finished_at is None:
            assert time.monotonic() < deadline, "the aborted download was never closed in the metering table"
            time.sleep(0.1)
        resumed = httpx.get(f"{base}/downloads/{token}", headers={"Range": f"bytes={len(received)}-"}, timeout=30)
    assert resumed.status_code == 206
    assert received + resumed.content == data  # byte-identical, within a quota of one download
    aborted, completed = downloads(session)
    assert not aborted.completed and len(received) <= aborted.bytes_sent < len(data)
    assert completed.completed and completed.bytes_sent == len(data) - len(received) == len(resumed.content)


@pytest.mark.parametrize("header", ["bytes=0-9,20-29", "items=0-9", "bytes=abc"])
def test_ranges_we_do_not_serve_fall_back_to_the_whole_file(session, export_with_file, header):
    export, path = export_with_file
    response = TestClient(create_app()).get(f"/downloads/{new_link(session, export)}", headers={"Range": header})
    assert response.status_code == 200 and response.content == path.read_bytes()
