"""The reconciler: makes every unfinished export's status match what is really happening to its run.

Prefect does not guarantee state hooks run, and a killed worker or machine runs none. So, every few minutes,
each export in `submitted`, `rendering` or `delivering` is compared with its flow run:

- the run finished (completed, failed, crashed, cancelled) but the row did not follow: settle the row as the
  hooks would have (success only after checking every target holds the file);
- the run is still "running" but the export's heartbeat has gone quiet: the process is dead; the run is
  marked crashed;
- a claim never got a run, or a run crashed or died: re-queue the export (-> pending) while it has had fewer
  than `max_attempts` runs, else end it in `error` with the reason and remove partial uploads.

It also gives back render slots that no render holds (`flows.capacity.reclaim_leaked_slots`), so that waiting
exports are not held back for good by a lease the Prefect server forgot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed, StateType
from sqlmodel import Session, select

from flows.capacity import reclaim_leaked_slots
from flows.hooks import settle_completed
from flows.notify import announce
from flows.services.settling import clean_partial_deliveries, requeue_or_fail
from flows.services.status import RUNNING, advance_export
from models.db import get_engine
from models.settings import get_settings
from models.status import ExportStatus
from models.tables import Export
from models.timestamps import utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Repair:
    """What the reconciler did to one export, and why."""

    export_id: int
    action: str  # settled | requeued | failed
    reason: str


def _give_up_or_requeue(export: Export, reason: str) -> Repair:
    return Repair(export.id, requeue_or_fail(export.id, export.attempts, reason, export.flow_run_id), reason)


def _read_run(client, flow_run_id: str):
    try:
        return client.read_flow_run(flow_run_id)
    except ObjectNotFound:
        return None


def reconcile_one(client, export: Export) -> Repair | None:
    """Compare one unfinished export with its flow run and repair the row if they disagree."""
    settings = get_settings()
    now = utcnow()
    if export.flow_run_id is None:
        stale = now - export.updated_at > timedelta(seconds=settings.claim_timeout_seconds)
        if export.status == ExportStatus.submitted and stale:
            return _give_up_or_requeue(export, "it was claimed but its flow run was never started")
        return None
    run = _read_run(client, export.flow_run_id)
    if run is None:
        return _give_up_or_requeue(export, f"its flow run {export.flow_run_id} no longer exists")
    state = run.state.type if run.state else None
    if state == StateType.COMPLETED:
        settle_completed(export.id, run=export.flow_run_id)
        return Repair(export.id, "settled", "its flow run completed but the hooks did not record it")
    if state in (StateType.FAILED, StateType.CANCELLED):
        message = (run.state.message or run.state.name or state.value).strip()
        if advance_export(export.id, ExportStatus.error, run=export.flow_run_id, error=message):
            clean_partial_deliveries(export.id)
        return Repair(export.id, "failed", f"its flow run ended {state.value.lower()}: {message}")
    if state == StateType.CRASHED:
        return _give_up_or_requeue(export, f"its flow run crashed: {run.state.message or 'no message'}")
    beat = export.heartbeat_at
    silent = beat is not None and now - beat > timedelta(seconds=settings.heartbeat_timeout_seconds)
    if state in (StateType.RUNNING, StateType.CANCELLING) and silent:
        reason = f"its run stopped beating at {beat.isoformat()} (the process running it died)"
        client.set_flow_run_state(run.id, Crashed(message=reason), force=True)
        return _give_up_or_requeue(export, reason)
    return None  # scheduled, pending (waiting for a worker) or running and alive: nothing to repair


def reconcile(limit: int = 500) -> list[Repair]:
    """One pass over the unfinished exports, oldest first; returns what was repaired."""
    with Session(get_engine()) as session:
        exports = session.exec(select(Export).where(Export.status.in_(RUNNING))
                               .order_by(Export.updated_at).limit(limit)).all()
    repairs = []
    with get_client(sync_client=True) as client:
        for export in exports:
            repair = reconcile_one(client, export)
            if repair is not None:
                logger.info("export %s %s: %s", repair.export_id, repair.action, repair.reason)
                repairs.append(repair)
    return repairs


@flow(name="reconcile-exports")
def reconcile_exports(limit: int = 500) -> list[dict]:
    """Repair the status of exports whose runs finished, crashed or died without saying so, and give back
    render slots that no render holds."""
    repairs = reconcile(limit)
    for repair in repairs:
        get_run_logger().info("export %s %s: %s", repair.export_id, repair.action, repair.reason)
    announce()  # the changes just repaired
    reclaimed = reclaim_leaked_slots()
    if reclaimed:
        get_run_logger().warning("gave back %s render slot(s) that no render held", reclaimed)
    return [repair.__dict__ for repair in repairs]
