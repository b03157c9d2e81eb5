"""A database that cannot be reached: a command says so in one line and exits 1 (no traceback, no secret); the
API server starts all the same and answers 503 until it is back."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.net import free_port
from tests.support.processes import Service

GEOSHIP = Path(sys.executable).with_name("geoship")


@pytest.mark.parametrize("args", [["status", "1"], ["projects", "list"], ["export", "--project", "alps", "--resolution", "100"]])
def test_an_unreachable_database_is_named_as_the_reason(tmp_path, args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOSHIP_")}
    port = free_port()  # nothing listens there
    env.update(GEOSHIP_HOME=str(tmp_path / "home"),
               GEOSHIP_DATABASE_URL=f"postgresql+psycopg2://geoship:pg-secret@127.0.0.1:{port}/geoship")
    done = subprocess.run([str(GEOSHIP), *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (f'error: the database is unavailable: connection to server at "127.0.0.1", port '
                                   f"{port} failed: Connection refused"), done.stderr
    assert "pg-secret" not in done.stdout + done.stderr
    assert "migrat" not in done.stderr and "upgrade" not in done.stderr  # not mistaken for an empty database


def test_the_api_server_starts_without_its_database_and_answers_503_until_it_is_back(tmp_path):
    """A database started beside the API may come up after it: `serve` starts, says so, and answers 503."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEOSHIP_", "PROMETHEUS_"))}
    port, api_port = free_port(), free_port()
    env.update(GEOSHIP_HOME=str(tmp_path / "home"), GEOSHIP_START_ON_REQUEST="false",
               GEOSHIP_DATABASE_URL=f"postgresql+psycopg2://geoship:pg-secret@127.0.0.1:{port}/geoship")
    server = Service("serve", [str(GEOSHIP), "serve", "--port", str(api_port)], env, tmp_path)
    base = f"http://127.0.0.1:{api_port}"
    try:
        server.wait_for_http(f"{base}/health", 60)
        answer = httpx.get(f"{base}/api/v1/exports", headers={"Authorization": "Bearer gs_anything"}, timeout=10)
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "5", answer.text
    finally:
        server.stop()
    said = server.log.read_text()
    assert "warning: the database is unavailable (connection to server at" in said, said
    assert "pg-secret" not in said and "Traceback" not in said
