"""The `geoship` executable ends its process straight after its exit handlers (cli.entry): the command's exit
status, its whole output and what exit handlers do must survive that."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The entry point exactly as the console script calls it (a fresh clone's .venv/bin/geoship does the same).
SCRIPT = "import sys; from cli.entry import run; sys.argv[0] = 'geoship'; sys.exit(run())"


def geoship(tmp_path, *args, extra: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOSHIP_")}
    env["GEOSHIP_HOME"] = str(tmp_path / "home")
    code = SCRIPT if not extra else f"{extra}; {SCRIPT}"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args,status", [(["--help"], 0), (["projects", "list"], 0), (["status", "424242"], 2),
                                         (["export", "--no-such-option"], 2), (["no-such-command"], 2)])
def test_the_exit_status_is_the_commands(tmp_path, args, status):
    assert geoship(tmp_path, *args).returncode == status


def test_the_whole_output_arrives(tmp_path):
    # Written to a pipe, the help (several kilobytes) sits in Python's buffer until the exit flushes it.
    done = geoship(tmp_path, "export", "--help")
    assert done.returncode == 0
    assert "--wait" in done.stdout and done.stdout.rstrip().endswith("╯")


def test_exit_handlers_registered_by_the_command_still_run(tmp_path):
    # A handler registered while the command runs (as Prefect's and Ray's are) runs before the process ends.
    marker = tmp_path / "ran"
    hook = ("import atexit, cli.main; command = cli.main.app; "
            f"cli.main.app = lambda: (atexit.register(lambda: open({str(marker)!r}, 'w').write('yes')), command())")
    done = geoship(tmp_path, "--help", extra=hook)
    assert done.returncode == 0 and marker.read_text() == "yes"
