"""Download links as GIS clients use them: GDAL's /vsicurl/ reads a COG in place through a link whose path ends
in the file's name (even with CPL_VSIL_CURL_ALLOWED_EXTENSIONS=.tif), its many ranged reads pass the request
limit and use only a fraction of the quota, fifty concurrent ranges are each served right, and CORS is a
setting."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import rasterio
import rasterio.shutil
from fastapi.testclient import TestClient
from rasterio.windows import Window
from sqlmodel import select

from api.app import create_app
from delivery.artifacts import artifact_store
from delivery.http_link import issue_link, link_url, list_links
from models.tables import Export, User
from tests.support.live_server import serving
from tests.support.rendered import rendered_record


@pytest.fixture
def cog_export(session, tmp_path):
    """A finished export whose file is a real 2048 px, 3-band COG with overviews, in the artifact store."""
    user = User(name="gis")
    session.add(user)
    session.flush()
    export = Export(owner_id=user.id, tool={}, output_srid=3857, resolution=10, grid={})
    session.add(export)
    session.flush()
    source = tmp_path / "source.tif"
    rows, cols = np.mgrid[0:2048, 0:2048]
    data = np.stack([(rows * 7 + cols) % 65521, (rows * cols) % 4093, rows ^ cols]).astype(np.uint16)
    with rasterio.open(source, "w", driver="GTiff", width=2048, height=2048, count=3, dtype="uint16", crs="EPSG:3857",
                       transform=rasterio.transform.from_origin(0, 20480, 10, 10)) as dst:
        dst.write(data)
    path = artifact_store().staging_path(export.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    rasterio.shutil.copy(source, path, driver="COG", compress="DEFLATE", blocksize=256, overviews="AUTO")
    export.artifact = str(path)
    export.rendered = rendered_record(path)
    session.add(export)
    session.commit()
    return export, path, data


def test_gdal_reads_the_cog_in_place_through_a_link_ending_in_tif(session, cog_export):
    export, path, data = cog_export
    link = issue_link(session, export_id=export.id, target_id=None, ttl_hours=1, download_quota=1)
    session.commit()
    with serving(create_app()) as base:
        url = link_url(link, path.name, base_url=base)
        assert url.endswith(f"/export-{export.id}.tif")
        # As GIS users set GDAL up; no cache, so that every read is a request (more of them than QGIS would make).
        gdal = dict(CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif", GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",
                    GDAL_HTTP_MULTIRANGE="NO", VSI_CACHE="FALSE", CPL_VSIL_CURL_USE_CACHE="NO")
        reads = [Window(c, r, 256, 256) for r in range(0, 2048, 512) for c in range(0, 2048, 512)]
        with rasterio.Env(**gdal), rasterio.open(f"/vsicurl/{url}") as remote:
            assert (remote.width, remote.height, remote.count) == (2048, 2048, 3)
            assert remote.overviews(1)
            for window in reads:
                assert np.array_equal(remote.read(window=window), data[:, window.row_off:window.row_off + 256,
                                                                        window.col_off:window.col_off + 256])
            with rasterio.open(path) as local:
                assert np.array_equal(remote.read(1, out_shape=(128, 128)), local.read(1, out_shape=(128, 128)))
        with rasterio.Env(**gdal), pytest.raises(rasterio.errors.RasterioIOError):
            rasterio.open(f"/vsicurl/{link_url(link, base_url=base)}")  # the bare token: GDAL refuses the URL
    (row,) = list_links(session, owner=session.get(User, export.owner_id))
    assert row["requests"] >= len(reads) and 0 < row["downloads_used"] < 1  # read in place, not downloaded
    assert row["url"].endswith(f"/export-{export.id}.tif")


def test_the_old_link_form_works_and_a_wrong_name_is_404(session, cog_export):
    export, path, _ = cog_export
    link = issue_link(session, export_id=export.id, target_id=None, ttl_hours=1)
    session.commit()
    client = TestClient(create_app())
    token = link_url(link).rsplit("/", 1)[1]
    assert client.get(f"/downloads/{token}/{path.name}").content == path.read_bytes()
    assert client.head(f"/downloads/{token}").status_code == 200
    wrong = client.get(f"/downloads/{token}/export-999.tif")
    assert wrong.status_code == 404 and f"serves {path.name}" in wrong.json()["detail"]


def test_fifty_concurrent_range_reads_are_each_served_right(session, cog_export):
    export, path, _ = cog_export
    data = path.read_bytes()
    link = issue_link(session, export_id=export.id, target_id=None, ttl_hours=1)
    session.commit()
    ranges = [(i * 20011 % (len(data) - 5000), i * 20011 % (len(data) - 5000) + 4095) for i in range(50)]
    with serving(create_app()) as base, httpx.Client(timeout=30) as client:
        url = link_url(link, path.name, base_url=base)

        def read(span):
            return client.get(url, headers={"Range": f"bytes={span[0]}-{span[1]}"})

        with ThreadPoolExecutor(max_workers=50) as pool:
            responses = list(pool.map(read, ranges))
    assert [r.status_code for r in responses] == [206] * 50
    assert all(r.content == data[a:b + 1] for r, (a, b) in zip(responses, ranges, strict=True))


def test_hundreds_of_ranged_reads_pass_while_whole_file_requests_stay_limited(session, cog_export, monkeypatch):
    monkeypatch.setenv("GEOSHIP_DOWNLOAD_REQUEST_BURST", "3")
    from models.settings import get_settings

    get_settings.cache_clear()
    export, path, _ = cog_export
    link = issue_link(session, export_id=export.id, target_id=None, ttl_hours=1)
    session.commit()
    token = link_url(link).rsplit("/", 1)[1]
    client = TestClient(create_app())
    statuses = [client.get(f"/downloads/{token}", headers={"Range": f"bytes={i * 512}-{i * 512 + 511}"}).status_code
                for i in range(150)]
    assert statuses == [206] * 150
    whole = [client.get(f"/downloads/{token}").status_code for _ in range(4)]
    assert whole == [200, 200, 200, 429]


def test_cors_is_off_by_default_and_answers_the_origins_it_is_given(session, cog_export, monkeypatch):
    export, path, _ = cog_export
    link = issue_link(session, export_id=export.id, target_id=None, ttl_hours=1)
    session.commit()
    token = link_url(link).rsplit("/", 1)[1]
    asked = {"Origin": "https://maps.example.org", "Range": "bytes=0-99"}
    plain = TestClient(create_app()).get(f"/downloads/{token}", headers=asked)
    assert plain.status_code == 206 and "access-control-allow-origin" not in plain.headers

    monkeypatch.setenv("GEOSHIP_DOWNLOAD_CORS_ORIGINS", "https://maps.example.org")
    from models.settings import get_settings

    get_settings.cache_clear()
    client = TestClient(create_app())
    preflight = client.options(f"/downloads/{token}/{path.name}", headers={
        "Origin": "https://maps.example.org", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "https://maps.example.org"
    read = client.get(f"/downloads/{token}/{path.name}", headers=asked)
    assert read.headers["access-control-allow-origin"] == "https://maps.example.org"
    assert "content-range" in read.headers["access-control-expose-headers"].lower()
    other = client.get(f"/downloads/{token}", headers={**asked, "Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers
    assert session.exec(select(Export)).first() is not None
