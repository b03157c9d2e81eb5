"""Status transitions and progress of exports and targets, as conditional updates.

Each transition is one UPDATE ... WHERE status IN (<earlier statuses>): a status only moves forward, and
two writers racing for the same transition cannot both win.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import DBAPIError

from flows.services.logbook import log_line
from models.db import connection_lost, get_engine
from models.status import ExportStatus, TargetStatus
from models.tables import Export, ExportTarget
from models.timestamps import utcnow

logger = logging.getLogger(__name__)

# Claimed and not finished: the statuses in which an export has (or should have) a live flow run.
RUNNING = [ExportStatus.submitted, ExportStatus.rendering, ExportStatus.delivering]

# A status write outlives a database restart or failover of this long before it gives up.
WRITE_PATIENCE_SECONDS = 30.0


def _write(statement, *then) -> int:
    """Execute one UPDATE in its own transaction, retrying while the database is unreachable; returns rowcount.
    The statements in `then` run in the same transaction when the first one matched a row (a transition's log
    line, the targets a retry reopens).

    A conditional UPDATE may safely run again: if an attempt committed before its connection dropped, the
    retry matches no row, which callers read as "someone already moved it".
    """
    deadline, delay = time.monotonic() + WRITE_PATIENCE_SECONDS, 0.25
    while True:
        try:
            with get_engine().begin() as connection:
                count = connection.execute(statement).rowcount
                for companion in then if count else ():
                    connection.execute(companion)
                return count
        except DBAPIError as exc:
            if not connection_lost(exc) or time.monotonic() > deadline:
                raise
            logger.warning("database unreachable (%s); retrying a status write", type(exc.orig).__name__)
            time.sleep(delay)
            delay = min(delay * 2, 4.0)


def advance_export(export_id: int, to: ExportStatus, *, run: str | None = None, **fields: Any) -> bool:
    """Move an export to `to` if it is in an earlier, non-final status; True when it moved.

    With `run`, only while that flow run is still the export's: a late hook of a run the reconciler has
    already written off (and re-queued) must not overwrite the export's new life.
    """
    values: dict[str, Any] = {"status": to, "updated_at": utcnow(), **fields}
    if to.is_final:
        values["finished_at"] = utcnow()
    statement = update(Export).where(Export.id == export_id, Export.status.in_(to.earlier())).values(**values)
    if run is not None:
        statement = statement.where(Export.flow_run_id == run)
    error = fields.get("error") if to == ExportStatus.error else None
    said = log_line(export_id, f"{to.value}: {error}" if error else to.value, "error" if error else "info", to)
    return _write(statement, said) == 1


def fail_export(export_id: int, reason: str) -> bool:
    """End an unfinished export in error with `reason`; False when it had already finished."""
    return advance_export(export_id, ExportStatus.error, error=reason)


def claim_export(export_id: int) -> bool:
    """Claim one pending export (pending -> submitted, one more attempt); False when someone else already did."""
    return advance_export(export_id, ExportStatus.submitted, attempts=Export.attempts + 1)


def release_claim(export_id: int, reason: str) -> bool:
    """submitted -> pending for a claim whose flow run could not be created, noting why: the export waits for
    the next start (the attempt stays counted, so a start that keeps failing ends it). False when it had moved
    on meanwhile."""
    statement = (update(Export).where(Export.id == export_id, Export.status == ExportStatus.submitted,
                                      Export.flow_run_id.is_(None))
                 .values(status=ExportStatus.pending, error=f"not started yet: {reason}", updated_at=utcnow()))
    said = log_line(export_id, f"pending: not started yet: {reason}", "warning", ExportStatus.pending)
    return _write(statement, said) == 1


def reopen_for_delivery(export_id: int, target_ids: list[int]) -> bool:
    """A finished export back to `delivering`, with the given targets pending again, in one transaction;
    False when the export was not finished (it changed meanwhile). The operator's retry: the one transition
    that moves a status backwards."""
    reopen = (update(Export).where(Export.id == export_id, Export.status.in_([ExportStatus.success, ExportStatus.error]))
              .values(status=ExportStatus.delivering, error=None, finished_at=None, updated_at=utcnow()))
    targets = (update(ExportTarget).where(ExportTarget.id.in_(target_ids))
               .values(status=TargetStatus.pending, error=None, result=None, updated_at=utcnow()))
    said = log_line(export_id, f"delivering: reopened to deliver again to {len(target_ids)} target(s)", "info",
                    ExportStatus.delivering)
    return _write(reopen, targets, said) == 1


def record_progress(export_id: int, done: int, total: int) -> bool:
    """Tiles done / total on the export row, while it renders; False when it is no longer rendering
    (cancelled, or ended by the reconciler), which tells the renderer to stop."""
    statement = (
        update(Export).where(Export.id == export_id, Export.status == ExportStatus.rendering)
        .values(tiles_done=done, tiles_total=total, progress=(done / total if total else 1.0), updated_at=utcnow(),
                heartbeat_at=utcnow())
    )
    return _write(statement) == 1


def beat(export_id: int) -> bool:
    """Record that the export's run is alive; False once the export has finished."""
    statement = (update(Export).where(Export.id == export_id, Export.status.in_(ExportStatus.success.earlier()))
                 .values(heartbeat_at=utcnow()))
    return _write(statement) == 1


def requeue_export(export_id: int, reason: str, run: str | None) -> bool:
    """Put a running export whose run (`run`, None for a claim that never got one) died back in the queue
    (-> pending), forgetting that run; the reconciler's retry."""
    same_run = Export.flow_run_id.is_(None) if run is None else Export.flow_run_id == run
    statement = (
        update(Export).where(Export.id == export_id, Export.status.in_(RUNNING), same_run)
        .values(status=ExportStatus.pending, flow_run_id=None, tiles_done=0, progress=0.0, heartbeat_at=None,
                error=f"re-queued: {reason}", updated_at=utcnow())
    )
    return _write(statement, log_line(export_id, f"pending: re-queued: {reason}", "warning", ExportStatus.pending)) == 1


def set_export_fields(export_id: int, **fields: Any) -> None:
    """Record facts about an export that are not transitions (flow run id, artifact, result)."""
    _write(update(Export).where(Export.id == export_id).values(updated_at=utcnow(), **fields))


def set_target_status(target_id: int, status: TargetStatus, **fields: Any) -> None:
    """A target's status with its result or error."""
    statement = update(ExportTarget).where(ExportTarget.id == target_id).values(status=status, updated_at=utcnow(), **fields)
    _write(statement)
