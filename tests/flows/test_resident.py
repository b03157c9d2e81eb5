"""The resident worker (`geoship worker`): claims the export deployment's scheduled runs and runs them in its own
process with Prefect's engine, never a run another worker has claimed, and passes a cancellation from Prefect on
to the render it stops."""

import os
import threading
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.states import Pending
from sqlmodel import Session

from delivery.artifacts import artifact_store
from flows.export_flow import export_flow
from flows.resident import CANCELLED_IN_PREFECT, ResidentWorker
from flows.services.submission import create_export
from flows.starting import start_due_exports
from models.db import get_engine
from models.errors import NotFound
from models.schemas import ExportRequest
from models.settings import get_settings
from models.status import ExportStatus
from models.tables import Export
from ray_render.reserve import keep_actors, stop_keeping_actors
from ray_render.writer import working_files
from tests.support.rows import finer_grid, set_row

pytestmark = pytest.mark.usefixtures("prefect_server", "ray_cluster")

DEPLOYMENT = "export/export-resident"


@pytest.fixture
def resident(monkeypatch):
    monkeypatch.setenv("GEOSHIP_MAX_CONCURRENT_RENDERS", "2")
    get_settings.cache_clear()
    export_flow.to_deployment(name="export-resident").apply()
    worker = ResidentWorker({DEPLOYMENT: export_flow}, runs=2, poll_seconds=0.05, busy_poll_seconds=0.05)
    worker.start()
    yield worker
    worker.drain()


def ordered(session, owner, **fields) -> int:
    fields = {"resolution": 480, **fields}
    export = create_export(session, owner=owner, request=ExportRequest(project="alps", **fields))
    session.commit()
    return export.id


def started(*export_ids: int) -> list[str]:
    """Start the exports as the poller or a request does (claimed, each with a flow run on the deployment);
    returns their flow runs' ids."""
    assert start_due_exports(DEPLOYMENT) == list(export_ids)
    with Session(get_engine()) as session:
        return [session.get(Export, export_id).flow_run_id for export_id in export_ids]


def flow_run(flow_run_id: str):
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def poll_until(worker: ResidentWorker, done, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        worker.poll()
        time.sleep(0.05)


def test_a_scheduled_export_run_is_claimed_and_run_to_success_in_this_process(session, owner, project, resident):
    first, second = ordered(session, owner), ordered(session, owner, resolution=240)
    runs = started(first, second)

    poll_until(resident, lambda: not resident.running and all(flow_run(r).state.is_final() for r in runs))

    session.expire_all()
    for export_id, run_id in zip((first, second), runs, strict=True):
        export = session.get(Export, export_id)
        assert export.status == ExportStatus.success, export.error
        assert artifact_store().size(export.artifact) == export.rendered["bytes"] > 0
        run = flow_run(run_id)
        assert run.state.is_completed() and run.name == f"export-{export_id}"
        assert export.runner.split("/")[2] == str(os.getpid())  # ran in this process


def test_a_run_another_worker_has_claimed_is_left_alone(session, owner, project, resident):
    export_id = ordered(session, owner)
    (run_id,) = started(export_id)
    with get_client(sync_client=True) as client:  # another worker's claim, first
        assert client.set_flow_run_state(run_id, Pending()).state.is_pending()

    assert resident.poll() == []
    time.sleep(0.3)
    assert resident.poll() == [] and resident.running == []
    session.expire_all()
    assert session.get(Export, export_id).status == ExportStatus.submitted
    assert flow_run(run_id).state.is_pending()


def test_cancelling_the_run_in_prefect_stops_its_render_and_ends_the_export(session, owner, project, resident,
                                                                            monkeypatch):
    monkeypatch.setenv("GEOSHIP_TILE_SIZE", "64")
    get_settings.cache_clear()
    export_id = ordered(session, owner)
    # 15 m, 2,324 tiles: long enough that the cancel lands before the render's end (at 30 m it could race it)
    set_row(export_id, resolution=15.0, grid=finer_grid(session, export_id, 15.0))
    (run_id,) = started(export_id)

    def rendering() -> bool:
        session.expire_all()
        return session.get(Export, export_id).tiles_done >= 2

    poll_until(resident, rendering)
    with get_client(sync_client=True) as client:  # as the Prefect UI's Cancel does
        from prefect.states import Cancelling

        client.set_flow_run_state(run_id, Cancelling(), force=True)
    poll_until(resident, lambda: not resident.running and flow_run(run_id).state.is_final())

    session.expire_all()
    ended = session.get(Export, export_id)
    assert (ended.status, ended.error) == (ExportStatus.error, CANCELLED_IN_PREFECT)
    assert ended.tiles_done < ended.tiles_total  # it stopped rather than running to the end
    assert flow_run(run_id).state.is_cancelled()
    staged = artifact_store().staging_path(export_id)
    assert not staged.exists() and not any(p.exists() for p in working_files(staged))


def test_while_its_own_runs_are_in_progress_it_asks_prefect_at_the_busy_pace(session, owner, project, monkeypatch):
    monkeypatch.setenv("GEOSHIP_TILE_SIZE", "64")
    monkeypatch.setenv("GEOSHIP_MAX_CONCURRENT_RENDERS", "2")  # the second export starts while the first renders
    get_settings.cache_clear()
    export_flow.to_deployment(name="export-resident").apply()
    now = [0.0]
    worker = ResidentWorker({DEPLOYMENT: export_flow}, runs=2, poll_seconds=0.05, busy_poll_seconds=30,
                            clock=lambda: now[0])
    worker.start()
    try:
        long_one = ordered(session, owner)
        # A render of tens of seconds, still going at the second poll. (With one render slot and a render of a few
        # seconds, the second export could only start once the first had rendered, and a fresh-clone CI run once
        # saw the first run end before the second poll: the worker then rightly asked Prefect at once.)
        set_row(long_one, resolution=15.0, grid=finer_grid(session, long_one, 15.0))
        (first,) = started(long_one)
        assert [str(r) for r in worker.poll()] == [first]  # nothing of its own in progress: asked at once
        (second,) = started(ordered(session, owner))
        assert [str(r) for r in worker.running] == [first]
        assert worker.poll() == []  # not asked: 30 s have not passed
        now[0] += 30
        assert [str(r) for r in worker.poll()] == [second]
        with get_client(sync_client=True) as client:  # no need to wait for the long render
            from prefect.states import Cancelling

            client.set_flow_run_state(first, Cancelling(), force=True)
        now[0] += 30
        poll_until(worker, lambda: not worker.running)
    finally:
        worker.drain()


def test_serve_stops_claiming_when_told_and_waits_for_its_runs(session, owner, project, resident):
    export_id = ordered(session, owner)
    (run_id,) = started(export_id)
    stop = threading.Event()
    serving = threading.Thread(target=resident.serve, args=(stop,))
    serving.start()
    deadline = time.monotonic() + 60
    while not resident.running:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    stop.set()
    serving.join(timeout=120)
    assert not serving.is_alive()
    assert flow_run(run_id).state.is_completed()  # the run in progress finished first


def test_a_deployment_missing_from_the_server_is_named():
    with pytest.raises(NotFound, match="deployment export/nowhere is not on the Prefect server"):
        ResidentWorker({"export/nowhere": export_flow}).start()


def test_kept_tile_actors_yield_at_once_to_a_render_of_another_process(session, owner, project, resident):
    from prefect.concurrency.sync import concurrency

    from flows.capacity import LEASE_SECONDS, RENDER_LIMIT, others_rendering

    # The premise: no other process renders. A render slot an earlier test's killed process held stays taken until
    # its lease runs out, and would make the worker end the actors this test expects it to keep.
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + LEASE_SECONDS + 30
        while others_rendering(client):
            assert time.monotonic() < deadline, "a render slot stayed taken past its lease"
            time.sleep(0.5)
    reserve = keep_actors(idle_seconds=600)
    try:
        (run_id,) = started(ordered(session, owner))
        poll_until(resident, lambda: not resident.running and flow_run(run_id).state.is_final())
        kept = reserve.idle
        assert flow_run(run_id).state.is_completed()
        with get_client(sync_client=True) as client:
            slots = client.read_global_concurrency_limit_by_name(RENDER_LIMIT).active_slots
        assert kept >= 1, f"no actor kept; render slots taken now: {slots}"  # its actors, kept
        resident.poll()
        assert reserve.idle == kept  # no one else renders: they wait for this worker's next render
        with concurrency(RENDER_LIMIT, occupy=1, lease_duration=60, strict=True):  # another process renders
            resident.poll()
            assert reserve.idle == 0
    finally:
        stop_keeping_actors()
