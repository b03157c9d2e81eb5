"""A command whose database cannot be reached says so in one line and exits 1: no traceback, no secret."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.net import free_port

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
