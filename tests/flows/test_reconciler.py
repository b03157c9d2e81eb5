"""The reconciler: after a run that ended without its hooks, crashed, died silently or never started, the
export's status is made to match reality; and a cancelled in-process render stops and leaves nothing."""

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.states import Completed, Crashed, Failed, Running

from delivery.artifacts import artifact_store
from flows.export_flow import export_flow
from flows.reconciler import reconcile
from flows.services.status import claim_export
from flows.services.submission import create_export
from flows.starting import cancel_export
from models.schemas import ExportRequest
from models.status import ExportStatus
from models.tables import Export
from models.timestamps import utcnow
from ray_render.writer import working_files
from tests.conftest import SMALL_AOI
from tests.support.rows import finer_grid, set_row

pytestmark = pytest.mark.usefixtures("prefect_server")


def new_export(session, owner, **fields) -> int:
    export = create_export(session, owner=owner, request=ExportRequest(project="alps", resolution=480, **fields))
    session.commit()
    return export.id


def flow_run_in(state, export_id: int) -> str:
    with get_client(sync_client=True) as client:
        return str(client.create_flow_run(export_flow, parameters={"export_id": export_id}, state=state).id)


def row(session, export_id: int) -> Export:
    session.expire_all()
    return session.get(Export, export_id)


@pytest.mark.usefixtures("ray_cluster")
def test_a_completed_run_whose_hooks_never_ran_is_settled_only_after_checking_the_file(session, owner, project):
    export_id = new_export(session, owner, aoi=SMALL_AOI)
    assert claim_export(export_id)
    export_flow(export_id)
    assert row(session, export_id).status == ExportStatus.success
    finished_run = row(session, export_id).flow_run_id

    set_row(export_id, status=ExportStatus.delivering, finished_at=None)  # as if on_completion never ran
    (repair,) = reconcile()
    assert (repair.export_id, repair.action) == (export_id, "settled")
    assert row(session, export_id).status == ExportStatus.success and row(session, export_id).flow_run_id == finished_run

    set_row(export_id, status=ExportStatus.delivering, finished_at=None)
    Path(row(session, export_id).artifact).unlink()  # ...and the file is gone: never a false success
    reconcile()
    settled = row(session, export_id)
    assert settled.status == ExportStatus.error and "missing from the artifact store" in settled.error


def test_a_crashed_run_is_requeued_within_its_budget_then_ends_in_error(session, owner, project):
    export_id = new_export(session, owner)
    assert claim_export(export_id)
    set_row(export_id, status=ExportStatus.rendering, flow_run_id=flow_run_in(Crashed(message="worker lost"), export_id))
    (repair,) = reconcile()
    assert repair.action == "requeued"
    requeued = row(session, export_id)
    assert (requeued.status, requeued.flow_run_id, requeued.attempts) == (ExportStatus.pending, None, 1)
    assert "worker lost" in requeued.error

    assert claim_export(export_id)  # the poller takes it again: attempt 2 of 2
    set_row(export_id, status=ExportStatus.rendering, flow_run_id=flow_run_in(Crashed(message="worker lost"), export_id))
    (repair,) = reconcile()
    assert repair.action == "failed"
    failed = row(session, export_id)
    assert failed.status == ExportStatus.error and "its flow run crashed: worker lost" in failed.error


def test_what_a_dead_run_left_half_written_goes_before_its_export_is_requeued(session, owner, project):
    export_id = new_export(session, owner)
    assert claim_export(export_id)
    left = artifact_store().staging_path(export_id).with_suffix(".zip.partial")  # a package it was writing
    left.parent.mkdir(parents=True, exist_ok=True)
    left.write_bytes(b"half a package")
    set_row(export_id, status=ExportStatus.rendering, flow_run_id=flow_run_in(Crashed(message="worker lost"), export_id))
    (repair,) = reconcile()
    assert repair.action == "requeued" and not left.exists()


def test_a_run_that_stopped_beating_is_declared_dead(session, owner, project):
    export_id = new_export(session, owner)
    assert claim_export(export_id)
    run_id = flow_run_in(Running(), export_id)
    set_row(export_id, status=ExportStatus.rendering, flow_run_id=run_id, heartbeat_at=utcnow())
    assert reconcile() == []  # alive: left alone
    set_row(export_id, heartbeat_at=utcnow() - timedelta(minutes=10))
    (repair,) = reconcile()
    assert repair.action == "requeued" and "stopped beating" in repair.reason
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id).state.is_crashed()
    assert row(session, export_id).status == ExportStatus.pending


def test_failed_runs_and_lost_claims(session, owner, project):
    failed_id, lost_id, fresh_id = (new_export(session, owner) for _ in range(3))
    for export_id in (failed_id, lost_id, fresh_id):
        assert claim_export(export_id)
    set_row(failed_id, flow_run_id=flow_run_in(Failed(message="scene x: cannot open"), failed_id))
    set_row(lost_id, updated_at=utcnow() - timedelta(hours=1))  # claimed an hour ago, no run ever created
    repairs = {r.export_id: r for r in reconcile()}
    assert set(repairs) == {failed_id, lost_id}
    assert row(session, failed_id).status == ExportStatus.error and "scene x: cannot open" in row(session, failed_id).error
    assert repairs[lost_id].action == "requeued" and row(session, lost_id).status == ExportStatus.pending
    assert row(session, fresh_id).status == ExportStatus.submitted  # a fresh claim is not touched


def test_an_in_flight_completed_state_is_settled(session, owner, project):
    export_id = new_export(session, owner)
    assert claim_export(export_id)
    set_row(export_id, status=ExportStatus.delivering, flow_run_id=flow_run_in(Completed(), export_id))
    reconcile()
    settled = row(session, export_id)
    assert settled.status == ExportStatus.error and "missing" in settled.error  # nothing was rendered


@pytest.mark.usefixtures("ray_cluster")
def test_cancelling_stops_an_in_process_render_and_leaves_nothing(session, owner, project, monkeypatch):
    monkeypatch.setenv("GEOSHIP_TILE_SIZE", "64")
    from models.settings import get_settings

    get_settings.cache_clear()
    export_id = new_export(session, owner)
    # 2,324 tiles, about 4 s of rendering: the cancel (at the first progress write, half a second in) lands well
    # before the end. At 30 m (609 tiles) a render on a fast day finished first, and the test raced it.
    set_row(export_id, resolution=15.0, grid=finer_grid(session, export_id, resolution=15.0))
    assert claim_export(export_id)
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("error", _run(export_id)))
    runner.start()
    deadline = time.monotonic() + 60
    while row(session, export_id).tiles_done < 2:
        assert time.monotonic() < deadline and runner.is_alive(), row(session, export_id).error
        time.sleep(0.05)
    cancel_export(session, owner=owner, export_id=export_id)
    runner.join(timeout=60)
    ended = row(session, export_id)
    assert (ended.status, ended.error) == (ExportStatus.error, "cancelled by its owner")
    assert ended.tiles_done < ended.tiles_total  # it stopped rather than running to the end
    staged = artifact_store().staging_path(export_id)
    assert not staged.exists() and not any(p.exists() for p in working_files(staged))
    assert "no longer rendering" in outcome["error"]


def _run(export_id: int) -> str:
    try:
        export_flow(export_id)
    except Exception as exc:
        return str(exc)
    return ""
