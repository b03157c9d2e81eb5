"""The poller flow: claims pending rows and starts one export flow run per row on the deployment."""

import asyncio

import pytest
from prefect.client.orchestration import get_client

from flows.export_flow import export_flow
from flows.poller import poll_pending_exports
from flows.submission import create_export
from models.schemas import ExportRequest
from models.status import ExportStatus
from models.tables import Export

pytestmark = pytest.mark.usefixtures("prefect_server")


async def _flow_run(flow_run_id: str):
    async with get_client() as client:
        return await client.read_flow_run(flow_run_id)


def test_the_poller_starts_one_named_flow_run_per_pending_export(session, owner, project):
    export_flow.to_deployment(name="export-under-test").apply()
    ids = [create_export(session, owner=owner, request=ExportRequest(project="alps")).id for _ in range(3)]
    session.commit()

    started = poll_pending_exports(limit=10, deployment="export/export-under-test")
    assert sorted(started) == sorted(ids)
    assert poll_pending_exports(limit=10, deployment="export/export-under-test") == []  # nothing left to claim

    session.expire_all()
    for export_id in ids:
        export = session.get(Export, export_id)
        assert export.status == ExportStatus.submitted
        run = asyncio.run(_flow_run(export.flow_run_id))
        assert run.name == f"export-{export_id}"
        assert run.parameters == {"export_id": export_id}


def test_an_export_whose_run_cannot_start_ends_in_error(session, owner, project):
    export = create_export(session, owner=owner, request=ExportRequest(project="alps"))
    session.commit()
    assert poll_pending_exports(limit=10, deployment="export/no-such-deployment") == []
    session.expire_all()
    row = session.get(Export, export.id)
    assert row.status == ExportStatus.error and "could not start" in row.error
