"""Commands that render nothing start without the rendering, orchestration and storage stacks: what they import
is what makes them answer at once (bench/cli_latency.py measures how fast)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each of these costs a tenth of a second or more to import, and none is needed to read a row or print help.
RENDER_AND_SERVICE_STACKS = {"prefect", "ray", "rasterio", "numpy", "pyproj", "shapely", "boto3", "botocore",
                             "dropbox", "alembic", "fastapi", "uvicorn"}
DATABASE_STACK = {"sqlalchemy", "sqlmodel"}

# Runs one command in a fresh interpreter, as the `geoship` script does, and reports what it imported.
PROBE = """
import json, sys
from typer.testing import CliRunner
from cli.main import app
result = CliRunner().invoke(app, sys.argv[1:])
print(json.dumps({"exit": result.exit_code, "output": result.output,
                  "modules": sorted({name.split(".")[0] for name in sys.modules})}))
"""


def _run(tmp_path, *args) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOSHIP_")}
    env["GEOSHIP_HOME"] = str(tmp_path / "home")  # the embedded SQLite default, migrated by the first command
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("args", [["--help"], ["export", "--help"], ["projects", "--help"]])
def test_help_imports_no_database_and_no_rendering(tmp_path, args):
    report = _run(tmp_path, *args)
    assert report["exit"] == 0 and "Usage" in report["output"]
    assert not set(report["modules"]) & (RENDER_AND_SERVICE_STACKS | DATABASE_STACK)


@pytest.mark.parametrize("args, expected", [
    (["status", "7"], "export 7 not found"),
    (["projects", "list"], "visibility"),
    (["links", "list"], "bytes sent"),
    (["credentials", "list"], "label"),
    (["users", "list"], "API token"),
    (["tools", "list"], "slots"),
])
def test_reading_commands_import_only_the_database(tmp_path, args, expected):
    _run(tmp_path, "projects", "list")  # the first command migrates the new database (Alembic, once)
    report = _run(tmp_path, *args)
    assert expected in report["output"]
    imported = set(report["modules"])
    assert DATABASE_STACK <= imported
    assert not imported & RENDER_AND_SERVICE_STACKS, sorted(imported & RENDER_AND_SERVICE_STACKS)
