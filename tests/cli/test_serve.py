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
def server(geoship_home, request):
    port = free_port()
    env = {**os.environ, "GEOSHIP_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    geoship = Path(sys.executable).with_name("geoship")
    workers = getattr(request, "param", 1)
    process = subprocess.Popen([str(geoship), "serve", "--port", str(port), "--workers", str(workers)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
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


@pytest.mark.parametrize("server", [2], indirect=True)
def test_the_workers_of_one_serve_count_requests_together_for_prometheus(server):
    with httpx.Client(base_url=server, timeout=10) as client:  # new connections: the workers share them out
        for _ in range(20):
            assert httpx.get(f"{server}/health", timeout=10).status_code == 200
        answers = [client.get("/metrics").text for _ in range(4)]
    counts = {line.rsplit(" ", 1)[1] for text in answers for line in text.splitlines()
              if line.startswith('geoship_http_requests_total{method="GET",route="/health",status="200"}')}
    assert counts == {"21.0"}  # ours and the fixture's readiness check, whichever worker answers the scrape
