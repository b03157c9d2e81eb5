"""Ctrl-C during `geoship export --wait`: the export ends in error at once, nothing half-written remains."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlmodel import Session, select

from models.db import get_engine
from models.status import ExportStatus
from models.tables import Export

GEOSHIP = Path(sys.executable).with_name("geoship")


def test_interrupting_a_running_export_settles_its_row_and_exits_130(geoship_home, sample_scene_paths, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["GEOSHIP_TILE_SIZE"] = "64"
    env["PREFECT_HOME"] = str(tmp_path / "prefect")  # the command starts its own temporary Prefect server
    _add_project(env, sample_scene_paths)
    # A fine resolution makes thousands of tiles: the run is still rendering when the signal comes.
    process = subprocess.Popen([str(GEOSHIP), "export", "--project", "alps", "--resolution", "4", "--wait"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 150
        export = None
        while time.monotonic() < deadline and process.poll() is None:
            with Session(get_engine()) as session:
                export = session.exec(select(Export)).first()
            if export is not None and export.status == ExportStatus.rendering and export.tiles_done > 0:
                break
            time.sleep(0.2)
        assert export is not None and export.status == ExportStatus.rendering, "the export never started rendering"
        os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
        started = time.monotonic()
        assert process.wait(timeout=30) == 130
        assert time.monotonic() - started < 15
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    with Session(get_engine()) as session:
        row = session.get(Export, export.id)
    assert row.status == ExportStatus.error and "interrupted" in row.error
    artifacts = geoship_home / "artifacts" / f"export-{row.id}"
    assert not artifacts.exists() or list(artifacts.iterdir()) == []
    assert "interrupted" in process.stderr.read().decode()


def test_an_export_whose_command_was_killed_is_settled_by_the_next_look(geoship_home, sample_scene_paths, tmp_path):
    """SIGKILL (as the OOM killer sends) gives the command no chance to say anything: its helpers (Prefect's
    temporary server, Ray) die with it all the same, and the next `geoship status` finds its process gone and
    its heartbeat silent, re-queues the export and removes its working files."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(GEOSHIP_TILE_SIZE="64", GEOSHIP_HEARTBEAT_SECONDS="1", PREFECT_HOME=str(tmp_path / "prefect"))
    _add_project(env, sample_scene_paths)
    process = subprocess.Popen([str(GEOSHIP), "export", "--project", "alps", "--resolution", "4", "--wait"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        export = _wait_until_rendering(process)
        with Session(get_engine()) as session:
            runner = session.get(Export, export.id).runner
        assert runner.split("/")[2] == str(process.pid)  # the command recorded itself as the export's runner
        helpers = _descendants(process.pid)
        assert helpers, "the command started no helper processes"
        os.kill(process.pid, signal.SIGKILL)  # the command alone, as the OOM killer does
        process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and [p for p in helpers if Path(f"/proc/{p}").exists()]:
            time.sleep(0.2)
        alive = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:80] for p in helpers if Path(f"/proc/{p}").exists()}
        assert not alive, f"helpers outlived the killed command: {alive}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    time.sleep(2.5)  # more than two missed heartbeats
    status = subprocess.run([str(GEOSHIP), "status", str(export.id), "--json"], env=env, capture_output=True,
                            text=True, timeout=60)
    view = json.loads(status.stdout)
    assert view["status"] == "pending", view
    assert f"re-queued: the command running it (process {process.pid} on this machine) is gone" in view["error"]
    staged = geoship_home / "staging" / f"export-{export.id}"
    artifacts = geoship_home / "artifacts" / f"export-{export.id}"
    for directory in (staged, artifacts):
        assert not directory.exists() or list(directory.iterdir()) == [], list(directory.iterdir())
    again = subprocess.run([str(GEOSHIP), "status", str(export.id), "--json"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert json.loads(again.stdout)["status"] == "pending"  # settled once; it now waits like any other


def _add_project(env, scene_paths) -> None:
    subprocess.run([str(GEOSHIP), "projects", "create", "alps"], env=env, check=True, capture_output=True)
    subprocess.run([str(GEOSHIP), "scenes", "add", *map(str, scene_paths), "--project", "alps"],
                   env=env, check=True, capture_output=True)


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
        except OSError:
            continue
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _wait_until_rendering(process) -> Export:
    deadline = time.monotonic() + 150
    export = None
    while time.monotonic() < deadline and process.poll() is None:
        with Session(get_engine()) as session:
            export = session.exec(select(Export)).first()
        if export is not None and export.status == ExportStatus.rendering and export.tiles_done > 0:
            return export
        time.sleep(0.2)
    raise AssertionError(f"the export never started rendering: {export}")
