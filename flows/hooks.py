"""State hooks of the export flow: the final status is written here, idempotently.

Prefect does not guarantee hooks run (a killed process runs none), so every write is a conditional
update that a reconciler can repeat safely.
"""

from __future__ import annotations

from sqlmodel import Session, select

from delivery.artifacts import artifact_store
from flows.status import advance_export
from models.db import get_engine
from models.status import ExportStatus, TargetStatus
from models.tables import Export, ExportTarget

_PREFIXES = ("Flow run encountered an exception: ", "Task run encountered an exception ")


def _export_id(flow_run) -> int:
    return int(flow_run.parameters["export_id"])


def failure_message(state) -> str:
    """A readable message for a failed or crashed state: the exception's text, without Prefect's preamble."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # the result may be unreadable (crash, no persistence): fall back to the message
        exc = None
    if isinstance(exc, BaseException):
        return str(exc) or type(exc).__name__
    message = state.message or state.name or "the export flow failed"
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    return message


def undelivered(export_id: int) -> list[str]:
    """Reasons the export is not fully delivered: a missing file, or a target not in success."""
    with Session(get_engine()) as session:
        export = session.get(Export, export_id)
        targets = session.exec(select(ExportTarget).where(ExportTarget.export_id == export_id)).all()
    problems = []
    rendered = (export.result or {}).get("render", {})
    if not export.artifact or artifact_store().size(export.artifact) != rendered.get("bytes"):
        problems.append("the rendered file is missing from the artifact store")
    problems += [f"target {t.position} ({t.kind}) is {t.status}" for t in targets if t.status != TargetStatus.success]
    return problems


def mark_export_finished(flow, flow_run, state) -> None:
    """on_completion: success only when the file exists and every target holds it."""
    export_id = _export_id(flow_run)
    problems = undelivered(export_id)
    if problems:
        advance_export(export_id, ExportStatus.error, error="; ".join(problems))
    else:
        advance_export(export_id, ExportStatus.success, progress=1.0)


def mark_export_failed(flow, flow_run, state) -> None:
    """on_failure / on_crashed / on_cancellation: error, with the reason."""
    advance_export(_export_id(flow_run), ExportStatus.error, error=failure_message(state))
