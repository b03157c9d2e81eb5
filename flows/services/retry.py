"""Retry delivery without re-rendering: reopen a finished export for the targets an operator picks.

This is the one transition that goes backwards (`error`/`success` -> `delivering`), and only on request.
"""

from __future__ import annotations

from sqlmodel import Session, select

from delivery.artifacts import artifact_store
from flows.services import status
from flows.services.views import get_export
from models.errors import Conflict, NotFound
from models.rendered import rendered_of
from models.status import TargetStatus
from models.tables import Export, ExportTarget, User


def _targets_to_retry(session: Session, export: Export, position: int | None) -> list[ExportTarget]:
    targets = session.exec(
        select(ExportTarget).where(ExportTarget.export_id == export.id).order_by(ExportTarget.position)
    ).all()
    if position is not None:
        chosen = [t for t in targets if t.position == position]
        if not chosen:
            positions = ", ".join(str(t.position) for t in targets)
            raise NotFound(f"export {export.id} has no target {position} (targets: {positions})")
        return chosen
    chosen = [t for t in targets if t.status != TargetStatus.success]
    if not chosen:
        raise Conflict(f"every target of export {export.id} is already delivered; pick one with --target N "
                       "to deliver it again")
    return chosen


def reopen_for_delivery(session: Session, *, owner: User, export_id: int, position: int | None = None) -> list[int]:
    """Move the owner's finished export back to `delivering` with the chosen targets pending; returns their ids.

    Refused (`Conflict`) while the export is still running, or when its rendered file is gone.
    """
    export = get_export(session, owner=owner, export_id=export_id)
    if not export.status.is_final:
        raise Conflict(f"export {export_id} is {export.status.value}; delivery can be retried once it has finished")
    rendered = rendered_of(export)
    if rendered is None or artifact_store().size(rendered.uri) != rendered.bytes:
        raise Conflict(f"export {export_id} has no rendered file in the artifact store to deliver again; "
                       "order the export again instead")
    targets = _targets_to_retry(session, export, position)
    ids = [t.id for t in targets]
    if not status.reopen_for_delivery(export_id, ids):
        raise Conflict(f"export {export_id} changed status meanwhile; try again")
    return ids
