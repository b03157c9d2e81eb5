"""Immediate start: with a Prefect API configured, a request starts its flow run at once (status `submitted`),
and the poller, the safety net, never starts it a second time."""

import asyncio

import pytest
from prefect.client.orchestration import get_client

from flows.export_flow import export_flow
from flows.poller import poll_pending_exports
from models.settings import get_settings

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture
def start_on_request(monkeypatch):
    export_flow.to_deployment(name="export-immediate").apply()
    monkeypatch.setenv("GEOSHIP_START_ON_REQUEST", "true")
    monkeypatch.setenv("GEOSHIP_EXPORT_DEPLOYMENT", "export/export-immediate")
    get_settings.cache_clear()


async def _flow_run(flow_run_id: str):
    async with get_client() as client:
        return await client.read_flow_run(flow_run_id)


def test_a_request_is_submitted_with_its_flow_run_at_once(people, start_on_request):
    response = people["ada"].client.post("/api/v1/exports", json={"project": "alps", "resolution": 480})
    assert response.status_code == 201, response.text
    view = response.json()
    assert view["status"] == "submitted" and view["flow_run_id"]
    run = asyncio.run(_flow_run(view["flow_run_id"]))
    assert run.name == f"export-{view['id']}" and run.parameters == {"export_id": view["id"]}
    assert poll_pending_exports(limit=10, deployment="export/export-immediate") == []  # nothing left for the poller


def test_when_the_run_cannot_be_created_the_export_stays_pending_for_the_poller(people, start_on_request, monkeypatch):
    monkeypatch.setenv("GEOSHIP_EXPORT_DEPLOYMENT", "export/no-such-deployment")
    get_settings.cache_clear()
    view = people["ada"].client.post("/api/v1/exports", json={"project": "alps", "resolution": 480}).json()
    assert (view["status"], view["flow_run_id"]) == ("pending", None)
    assert poll_pending_exports(limit=10, deployment="export/export-immediate") == [view["id"]]
