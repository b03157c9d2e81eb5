"""The poller flow: starts the exports that are due (one flow run each, not its own subflows), within each
user's limit; a run that cannot be created leaves its export pending, then ends it once its attempts are used;
a run that frees its render slot or ends hands the start on to the next due export."""

import asyncio

import pytest
from prefect.client.orchestration import get_client

from flows.export_flow import export_flow
from flows.poller import poll_pending_exports
from flows.services.queue import claim_due
from flows.services.submission import create_export
from flows.services.views import export_view
from models.schemas import ExportRequest
from models.settings import get_settings
from models.status import ExportStatus
from models.tables import Export

pytestmark = pytest.mark.usefixtures("prefect_server")


async def _flow_run(flow_run_id: str):
    async with get_client() as client:
        return await client.read_flow_run(flow_run_id)


def test_the_poller_starts_one_named_flow_run_per_due_export(session, owner, project, monkeypatch):
    monkeypatch.setenv("GEOSHIP_MAX_CONCURRENT_RENDERS", "5")
    get_settings.cache_clear()
    export_flow.to_deployment(name="export-under-test").apply()
    ids = [create_export(session, owner=owner, request=ExportRequest(project="alps")).id for _ in range(3)]
    session.commit()

    started = poll_pending_exports(limit=10, deployment="export/export-under-test")
    assert started == ids[:2]  # a user runs two at once (GEOSHIP_MAX_RUNNING_PER_USER)
    assert poll_pending_exports(limit=10, deployment="export/export-under-test") == []  # the third waits

    session.expire_all()
    for export_id in ids[:2]:
        export = session.get(Export, export_id)
        assert export.status == ExportStatus.submitted
        run = asyncio.run(_flow_run(export.flow_run_id))
        assert run.name == f"export-{export_id}"
        assert run.parameters == {"export_id": export_id}
        assert run.parent_task_run_id is None  # its own run, not a subflow of the poller's
    waiting = session.get(Export, ids[2])
    assert waiting.status == ExportStatus.pending
    assert "2 of your exports running" in export_view(session, waiting).queue.waiting_for


def test_an_export_whose_run_cannot_start_waits_then_ends_in_error(session, owner, project):
    export = create_export(session, owner=owner, request=ExportRequest(project="alps"))
    session.commit()
    assert poll_pending_exports(limit=10, deployment="export/no-such-deployment") == []
    session.expire_all()
    row = session.get(Export, export.id)
    assert (row.status, row.attempts) == (ExportStatus.pending, 1)
    assert row.error.startswith("not started yet: could not create its flow run on export/no-such-deployment")
    assert poll_pending_exports(limit=10, deployment="export/no-such-deployment") == []
    session.expire_all()
    row = session.get(Export, export.id)
    assert row.status == ExportStatus.error and "gave up after 2 attempt(s)" in row.error


@pytest.mark.usefixtures("ray_cluster")
def test_a_run_that_frees_its_slot_starts_the_next_due_export_without_waiting_for_the_poller(
        session, owner, project, monkeypatch):
    for key, value in {"GEOSHIP_START_ON_REQUEST": "true", "GEOSHIP_MAX_CONCURRENT_RENDERS": "1",
                       "GEOSHIP_EXPORT_DEPLOYMENT": "export/export-under-test"}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    export_flow.to_deployment(name="export-under-test").apply()
    first, second = (create_export(session, owner=owner, request=ExportRequest(project="alps")).id for _ in range(2))
    session.commit()
    assert claim_due(render_slots=1) == [first]
    assert poll_pending_exports(limit=10, deployment="export/export-under-test") == []  # the one slot is taken

    export_flow(export_id=first)  # renders, frees the slot, hands it on, delivers

    session.expire_all()
    assert session.get(Export, first).status == ExportStatus.success
    waiting = session.get(Export, second)
    assert waiting.status == ExportStatus.submitted and waiting.attempts == 1
    assert asyncio.run(_flow_run(waiting.flow_run_id)).name == f"export-{second}"
