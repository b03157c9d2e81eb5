"""Every status change of an export as a Prefect event, `geoship.export.<status>`: the export is the resource,
its owner and its targets are related resources, so that operators wire Prefect Automations (Slack, e-mail,
a webhook of their own) on them without code.

The export's log is the outbox: each status change's line is written in the transaction of the change
(`flows.services.status`), and `emit_transitions` sends the lines not yet sent, oldest first, then marks them.
An event's id is derived from its line, so a line sent twice (a process that died between sending and marking)
is still one event. Emitting never fails the work around it: what cannot be sent now is sent by the next caller
(every run at its transitions, the poller every minute).
"""

from __future__ import annotations

import logging
import uuid

from prefect.events import emit_event
from sqlalchemy import update
from sqlmodel import Session, select

from models.db import get_engine
from models.tables import Export, ExportLog, ExportTarget, User
from models.timestamps import utcnow

logger = logging.getLogger(__name__)

EVENT_PREFIX = "geoship.export."
# Event ids: uuid5 of the log line in this namespace.
EVENT_NAMESPACE = uuid.UUID("6f0e3c1a-5b7d-4c9e-9a51-2d0c3f8e7b14")


def event_id(line: ExportLog) -> uuid.UUID:
    """The id of the event of a log line, the same however often it is sent. The line's time is part of it, so
    that two databases reporting to one Prefect server (staging and production, say) never share an id."""
    return uuid.uuid5(EVENT_NAMESPACE, f"export-log-{line.id}-{line.at.isoformat()}")


def emit_transitions(export_id: int | None = None, limit: int = 500) -> int:
    """Send the status changes not yet sent as Prefect events (one export's, or everyone's), oldest first;
    returns how many were sent. Never raises."""
    try:
        return _emit(export_id, limit)
    except Exception:  # Prefect or the database away for a moment: the next caller sends them
        logger.warning("could not emit export events now; they stay queued", exc_info=True)
        return 0


def _emit(export_id: int | None, limit: int) -> int:
    with Session(get_engine()) as session:
        query = select(ExportLog).where(ExportLog.status.is_not(None), ExportLog.emitted_at.is_(None))
        if export_id is not None:
            query = query.where(ExportLog.export_id == export_id)
        lines = session.exec(query.order_by(ExportLog.id).limit(limit)).all()
        sent = []
        for line in lines:
            export = session.get(Export, line.export_id)
            owner = session.get(User, export.owner_id)
            targets = session.exec(select(ExportTarget).where(ExportTarget.export_id == export.id)
                                   .order_by(ExportTarget.position)).all()
            emit_event(
                event=f"{EVENT_PREFIX}{line.status.value}", id=event_id(line), occurred=line.at,
                resource={"prefect.resource.id": f"geoship.export.{export.id}",
                          "prefect.resource.name": f"export-{export.id}", "geoship.status": line.status.value},
                related=[{"prefect.resource.id": f"geoship.user.{owner.id}", "prefect.resource.role": "owner",
                          "prefect.resource.name": owner.name},
                         *({"prefect.resource.id": f"geoship.target.{t.id}", "prefect.resource.role": "target",
                            "prefect.resource.name": f"{t.kind.value} target {t.position}"} for t in targets)],
                payload={"export_id": export.id, "status": line.status.value, "message": line.message,
                         "flow_run_id": export.flow_run_id},
            )
            sent.append(line.id)
    if sent:
        with get_engine().begin() as connection:
            connection.execute(update(ExportLog).where(ExportLog.id.in_(sent)).values(emitted_at=utcnow()))
    return len(sent)
