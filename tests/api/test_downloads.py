"""GET /downloads/{token}: streaming, metering, and clear answers for unknown, expired and revoked links."""

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from api.app import create_app
from delivery.http_link import issue_link, link_url
from models.tables import Download, DownloadLink, Export, User
from models.timestamps import utcnow


@pytest.fixture
def export_with_file(session, tmp_path):
    user = User(name="dl")
    session.add(user)
    session.flush()
    path = tmp_path / "export.tif"
    path.write_bytes(bytes(range(256)) * 9000)  # ~2.3 MB: several 1 MiB chunks
    export = Export(owner_id=user.id, tool={}, output_srid=3857, resolution=10, grid={}, artifact=str(path))
    session.add(export)
    session.commit()
    return export, path


def token_of(link: DownloadLink) -> str:
    return link_url(link).rsplit("/", 1)[1]


def test_a_live_link_streams_the_file_and_meters_every_byte(session, export_with_file):
    export, path = export_with_file
    link = issue_link(session, export_id=export.id, target_id=None, ttl_hours=1)
    session.commit()
    response = TestClient(create_app()).get(f"/downloads/{token_of(link)}")
    assert response.status_code == 200
    assert response.content == path.read_bytes()
    assert response.headers["content-length"] == str(path.stat().st_size)
    assert 'filename="export.tif"' in response.headers["content-disposition"]
    (download,) = session.exec(select(Download)).all()
    assert (download.link_id, download.bytes_sent, download.completed) == (link.id, path.stat().st_size, True)
    assert download.finished_at >= download.started_at


def test_the_database_holds_no_usable_token(session, export_with_file):
    export, _ = export_with_file
    link = issue_link(session, export_id=export.id, target_id=None, ttl_hours=1)
    session.commit()
    token = token_of(link)
    assert token not in (link.token_hash, link.salt) and len(token) >= 43


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
    assert session.exec(select(Download)).all() == []


def test_a_link_whose_file_is_gone_says_so(session, export_with_file):
    export, path = export_with_file
    link = issue_link(session, export_id=export.id, target_id=None, ttl_hours=1)
    session.commit()
    path.unlink()
    response = TestClient(create_app()).get(f"/downloads/{token_of(link)}")
    assert response.status_code == 404 and "no longer available" in response.json()["detail"]
