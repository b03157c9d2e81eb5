"""`geoship serve` as a real server on loopback: it answers download links over HTTP."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from delivery.http_link import issue_link, link_url
from models.tables import Export, User
from tests.support.net import free_port


@pytest.fixture
def server(geoship_home):
    port = free_port()
    env = {**os.environ, "GEOSHIP_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    geoship = Path(sys.executable).with_name("geoship")
    process = subprocess.Popen([str(geoship), "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("geoship serve did not start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_streams_a_link_and_refuses_unknown_tokens(server, session, tmp_path, monkeypatch):
    monkeypatch.setenv("GEOSHIP_PUBLIC_URL", server)
    from models.settings import get_settings

    get_settings.cache_clear()
    user = User(name="srv")
    session.add(user)
    session.flush()
    path = tmp_path / "e.tif"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    export = Export(owner_id=user.id, tool={}, output_srid=3857, resolution=1, grid={}, artifact=str(path))
    session.add(export)
    session.flush()
    link = issue_link(session, export_id=export.id, target_id=None, ttl_hours=1)
    session.commit()

    response = httpx.get(link_url(link), timeout=10)
    assert response.status_code == 200 and response.content == path.read_bytes()
    assert httpx.get(f"{server}/downloads/nope", timeout=10).status_code == 404
