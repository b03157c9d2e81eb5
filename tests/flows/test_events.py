"""Every status change of an export is a Prefect event, geoship.export.<status>, with the export as resource and
its owner and targets as related resources, sent once from the export's log (the outbox), as the Prefect
server stores them."""

import time

import pytest
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventIDFilter, EventNameFilter, EventResourceFilter
from prefect.events.worker import EventsWorker
from sqlmodel import Session, select

from flows.events import emit_transitions, event_id
from flows.export_flow import export_flow
from flows.services.status import claim_export
from flows.services.submission import create_export
from models.db import get_engine
from models.schemas import ExportRequest, TargetRequest
from models.tables import ExportLog, ExportTarget
from tests.conftest import REPO_ROOT, SMALL_AOI

pytestmark = pytest.mark.usefixtures("ray_cluster", "prefect_server")


def events_of(export_id: int, count: int, seconds: float = 30.0) -> list:
    """The server's events about export `export_id` of this test's database, oldest first, once there are `count`
    of them (the session's Prefect server also holds other tests' exports of the same id)."""
    EventsWorker.drain_all(timeout=10)
    ids = [event_id(line) for line in status_lines(export_id)]
    event_filter = EventFilter(event=EventNameFilter(prefix=["geoship.export."]), id=EventIDFilter(id=ids),
                               resource=EventResourceFilter(id=[f"geoship.export.{export_id}"]))
    deadline = time.monotonic() + seconds
    while True:
        with get_client(sync_client=True) as client:
            found = client.read_events(filter=event_filter, limit=50).events
        if len(found) >= count or time.monotonic() > deadline:
            return sorted(found, key=lambda e: e.occurred)
        time.sleep(0.5)


def status_lines(export_id: int) -> list[ExportLog]:
    with Session(get_engine()) as session:
        return list(session.exec(select(ExportLog).where(ExportLog.export_id == export_id, ExportLog.status.is_not(None))
                                 .order_by(ExportLog.id)).all())


def test_each_status_change_is_one_event_naming_the_export_its_owner_and_targets(session, owner, project):
    export = create_export(session, owner=owner, request=ExportRequest(
        project="alps", aoi=SMALL_AOI, resolution=480, targets=[TargetRequest(kind="http")]))
    session.commit()
    assert claim_export(export.id)
    export_flow(export.id)

    events = events_of(export.id, 5)
    assert [e.event for e in events] == [f"geoship.export.{s}" for s in
                                         ("pending", "submitted", "rendering", "delivering", "success")]
    lines = status_lines(export.id)
    assert [e.id for e in events] == [event_id(line) for line in lines]  # one event per status change
    assert all(line.emitted_at is not None for line in lines)
    (target,) = session.exec(select(ExportTarget).where(ExportTarget.export_id == export.id)).all()
    last = events[-1]
    assert last.resource.id == f"geoship.export.{export.id}" and last.resource.name == f"export-{export.id}"
    assert {(r.role, r.id) for r in last.related} >= {("owner", f"geoship.user.{owner.id}"),
                                                      ("target", f"geoship.target.{target.id}")}
    assert "flow-run" in {r.role for r in last.related}  # Prefect ties it to the run it was sent from
    assert last.payload["status"] == "success" and last.payload["export_id"] == export.id

    # Nothing is left to send, and sending again changes nothing.
    assert emit_transitions(export.id) == 0
    assert len(events_of(export.id, 6, seconds=3)) == 5


def test_the_shipped_automation_on_failed_exports_is_accepted_by_the_server():
    from prefect.blocks.notifications import SlackWebhook
    from prefect.events.schemas.automations import AutomationCore

    block_id = SlackWebhook(url="https://hooks.slack.com/services/T0/B0/X").save("geoship-alerts", overwrite=True)
    text = (REPO_ROOT / "observability" / "automation-export-failed.json").read_text()
    automation = AutomationCore.model_validate_json(text.replace("BLOCK_ID", str(block_id)))
    with get_client(sync_client=True) as client:
        stored = client.read_automation(client.create_automation(automation))
    assert stored.trigger.expect == {"geoship.export.error"} and stored.enabled
    assert stored.actions[0].block_document_id == block_id
