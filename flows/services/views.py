"""How an export looks to its owner: the one object the CLI's --json, `status` and the API return."""

from __future__ import annotations

from sqlmodel import Session, select

from delivery.http_link import link_url
from delivery.names import name_of
from flows.services.logbook import export_log
from flows.services.queue import queue_view
from flows.services.settling import settle_if_gone
from models.errors import NotFound
from models.schemas import ExportView, LogLineView, TargetView, WebhookAttemptView
from models.status import TargetKind
from models.tables import DownloadLink, Export, ExportTarget, User, WebhookAttempt


def _target_view(session: Session, target: ExportTarget, export: Export) -> TargetView:
    result = dict(target.result) if target.result else None
    if target.kind == TargetKind.http and result and "link_id" in result:
        link = session.get(DownloadLink, result["link_id"])
        if link is not None:
            result["url"] = link_url(link, name_of(export.artifact) if export.artifact else None)
            # The STAC and the manifest, served by the same link.
            result["sidecar_urls"] = [link_url(link, name) for name in result.get("sidecars", [])]
    return TargetView(id=target.id, kind=target.kind, status=target.status, result=result, error=target.error)


def export_view(session: Session, export: Export) -> ExportView:
    """The owner's view of `export`, with its targets (and their download URLs)."""
    targets = session.exec(
        select(ExportTarget).where(ExportTarget.export_id == export.id).order_by(ExportTarget.position)
    ).all()
    return ExportView(
        id=export.id, status=export.status, compression=export.compression,
        progress=export.progress, tiles_done=export.tiles_done,
        tiles_total=export.tiles_total, error=export.error, artifact=export.artifact,
        project_id=export.project_id, output_srid=export.output_srid, resolution=export.resolution,
        width=export.grid.get("width"), height=export.grid.get("height"), flow_run_id=export.flow_run_id,
        created_at=export.created_at, updated_at=export.updated_at, finished_at=export.finished_at,
        targets=[_target_view(session, t, export) for t in targets],
        skipped_scenes=(export.result or {}).get("skipped_scenes", {}),
        priority=export.priority, queue=queue_view(session, export), webhook_url=export.webhook_url,
        reused_from=(export.rendered or {}).get("reused_from"),
    )


def get_export(session: Session, *, owner: User, export_id: int) -> Export:
    """An export of `owner`; `NotFound` for anything else (including other users' exports)."""
    export = session.get(Export, export_id)
    if export is None or export.owner_id != owner.id:
        raise NotFound(f"export {export_id} not found")
    if settle_if_gone(export):  # its command died here without a word: say so now, not "rendering" for good
        session.refresh(export)
    return export


def export_log_view(session: Session, *, owner: User, export_id: int) -> list[LogLineView]:
    """The owner's export's own log, oldest line first (404 for anyone else's, as for the export)."""
    get_export(session, owner=owner, export_id=export_id)
    return [LogLineView(at=line.at, level=line.level, message=line.message) for line in export_log(session, export_id)]


def webhook_attempts_view(session: Session, *, owner: User, export_id: int) -> list[WebhookAttemptView]:
    """Every POST of the owner's export's status changes to its webhook, oldest first (404 for anyone else's)."""
    get_export(session, owner=owner, export_id=export_id)
    attempts = session.exec(select(WebhookAttempt).where(WebhookAttempt.export_id == export_id)
                            .order_by(WebhookAttempt.id)).all()
    return [WebhookAttemptView.model_validate(a, from_attributes=True) for a in attempts]
