"""An export's own log: short lines in words its owner reads (the order, each claim and status change, the
render, every delivery attempt, the end), for `GET /api/v1/exports/{id}/logs` and `geoship logs ID`.

Lines about a status change are written in the transaction of the change itself (`log_line` as the UPDATE's
companion in `flows.services.status`), so the log and the row never disagree; other lines are written with
`note`, which never fails the work it describes. Lines are composed from our own fields and errors, which never
carry a secret (tests/flows/test_no_secret_leaks.py scans them).
"""

from __future__ import annotations

import logging

from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from models.db import get_engine
from models.status import ExportStatus
from models.tables import ExportLog
from models.timestamps import utcnow

logger = logging.getLogger(__name__)

# A line longer than this is cut: an error with a long tail must not bloat the log.
MAX_MESSAGE = 2000


def log_line(export_id: int, message: str, level: str = "info", status: ExportStatus | None = None):
    """The INSERT of one line, to run in the transaction of the change it tells of; `status` for a status
    change (its line is then also the outbox entry of its Prefect event)."""
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 1] + "…"
    return insert(ExportLog).values(export_id=export_id, at=utcnow(), level=level, message=message, status=status)


def note(export_id: int, message: str, level: str = "info") -> None:
    """Write one line now, in a transaction of its own; a database that is away loses the line, not the work."""
    try:
        with get_engine().begin() as connection:
            connection.execute(log_line(export_id, message, level))
    except SQLAlchemyError as exc:
        logger.warning("export %s: could not write a log line (%s): %s", export_id, type(exc).__name__, message)


def export_log(session: Session, export_id: int) -> list[ExportLog]:
    """The export's lines, oldest first."""
    return list(session.exec(select(ExportLog).where(ExportLog.export_id == export_id).order_by(ExportLog.id)).all())
