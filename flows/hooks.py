"""State hooks of the export flows, and the checks behind a final status; every write is idempotent.

Prefect does not guarantee hooks run (a killed process runs none), so every write is a conditional update that
the reconciler (`flows.reconciler`) repeats safely for runs whose hooks never ran. Hooks write only while
their run is still the export's: a worker may run a crashed run's hooks long after the reconciler re-queued it.
"""

from __future__ import annotations

import logging

from sqlmodel import Session, select

from delivery.artifacts import artifact_store
from delivery.base import Artifact
from delivery.registry import DELIVERIES
from flows.notify import announce
from flows.services.settling import requeue_or_fail
from flows.services.status import advance_export
from flows.starting import start_next
from models.db import get_engine
from models.rendered import rendered_of
from models.status import ExportStatus, TargetStatus
from models.tables import Export, ExportTarget

logger = logging.getLogger(__name__)

_PREFIXES = ("Flow run encountered an exception: ", "Task run encountered an exception ")


def export_id_of(flow_run) -> int | None:
    """The export a flow run is for: its `export_id` parameter, or the row that recorded the run's id."""
    if flow_run.parameters.get("export_id") is not None:
        return int(flow_run.parameters["export_id"])
    with Session(get_engine()) as session:
        return session.exec(select(Export.id).where(Export.flow_run_id == str(flow_run.id))).first()


def failure_message(state) -> str:
    """A readable message for a failed or crashed state: the exception's text, without Prefect's preamble."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # the result may be unreadable (crash, no persistence): fall back to the message
        exc = None
    if isinstance(exc, Exception) and str(exc):
        message = str(exc)
    else:  # SystemExit, a signal: the exception says nothing useful; Prefect's message says what happened
        message = state.message or state.name or "the export flow failed"
        for prefix in _PREFIXES:
            message = message.removeprefix(prefix)
    return f"its flow run crashed: {message}" if state.is_crashed() else message


def undelivered(export_id: int) -> list[str]:
    """Reasons the export is not fully delivered: no rendered file, or a target that does not hold it.

    Each target is asked to prove it holds the file (size and checksum), not merely believed.
    """
    with Session(get_engine()) as session:
        export = session.get(Export, export_id)
        targets = session.exec(select(ExportTarget).where(ExportTarget.export_id == export_id)
                               .order_by(ExportTarget.position)).all()
        rendered = rendered_of(export)
        if rendered is None or artifact_store().size(rendered.uri) != rendered.bytes:
            return ["the rendered file is missing from the artifact store"]
        artifact = Artifact.of(export_id, rendered)
        problems = []
        for target in targets:
            if target.status != TargetStatus.success:
                problems.append(f"target {target.position} ({target.kind}) is {target.status}")
            elif problem := DELIVERIES[target.kind].verify(session, artifact, target):
                problems.append(f"target {target.position} ({target.kind}): {problem}")
    return problems


def settle_completed(export_id: int, run: str | None = None) -> None:
    """A run that completed: success only when every target holds the file, else error saying why."""
    problems = undelivered(export_id)
    if problems:
        advance_export(export_id, ExportStatus.error, run=run, error="; ".join(problems))
    else:
        advance_export(export_id, ExportStatus.success, run=run, progress=1.0, error=None)
    announce(export_id)


def mark_export_finished(flow, flow_run, state) -> None:
    """on_completion: success only when the file exists and every target holds it."""
    export_id = export_id_of(flow_run)
    if export_id is not None:
        settle_completed(export_id, run=str(flow_run.id))
        start_next()  # its owner has one export fewer running


def mark_export_crashed(flow, flow_run, state) -> None:
    """on_crashed (run by the worker when the run's process died, e.g. killed for memory): re-queue the export
    while it has runs left in its budget, else error with the reason."""
    export_id = export_id_of(flow_run)
    if export_id is None:
        return
    with Session(get_engine()) as session:
        attempts = session.get(Export, export_id).attempts
    # No hand-off here: it would start the re-queued export again at once, and a run the OOM killer took is
    # better retried at the poller's pace than straight back into the same memory pressure.
    requeue_or_fail(export_id, attempts, failure_message(state), str(flow_run.id))
    announce(export_id)


def mark_export_failed(flow, flow_run, state) -> None:
    """on_failure / on_crashed / on_cancellation: error, with the reason."""
    export_id = export_id_of(flow_run)
    if export_id is not None:
        advance_export(export_id, ExportStatus.error, run=str(flow_run.id), error=failure_message(state))
        announce(export_id)
        start_next()
