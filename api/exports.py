"""/api/v1/exports: request exports (with an optional Idempotency-Key), follow, list, cancel, retry delivery,
and estimate without creating anything."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Query, Response
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from api.deps import RowId, SessionDep, UserDep
from delivery.artifacts import artifact_store
from delivery.webhook_settings import account_webhook, signing_secret
from flows.services.retry import reopen_for_delivery
from flows.services.reuse import reusable_for_plan
from flows.services.settling import settle_gone_runs
from flows.services.submission import create_export, plan_export
from flows.services.views import export_log_view, export_view, get_export, webhook_attempts_view
from models.errors import Conflict
from models.schemas import Estimate, ExportPage, ExportRequest, ExportView, LogLineView, WebhookAttemptView
from models.status import ExportStatus
from models.tables import Export, IdempotencyKey

router = APIRouter(prefix="/exports", tags=["exports"])


def _request_hash(request: ExportRequest) -> str:
    return hashlib.sha256(json.dumps(request.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def _replay(session, user_id: int, key: str, request_hash: str) -> Export | None:
    """The export an earlier request with this key made; `Conflict` if that request differed."""
    record = session.get(IdempotencyKey, (user_id, key))
    if record is None:
        return None
    if record.request_hash != request_hash:
        raise Conflict(f"Idempotency-Key {key!r} was already used with a different request")
    return session.get(Export, record.export_id)


@router.post("", status_code=201, response_model=ExportView, summary="Request an export")
def request_export(
    body: ExportRequest, session: SessionDep, user: UserDep, response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> ExportView:
    """Validate and create an export (status `pending`), then start its flow run at once when a Prefect API is
    configured (status `submitted`). The same Idempotency-Key with the same body returns the same export."""
    request_hash = _request_hash(body)
    if idempotency_key and (earlier := _replay(session, user.id, idempotency_key, request_hash)) is not None:
        response.status_code = 200
        return export_view(session, earlier)
    first_secret = body.webhook_url is not None and account_webhook(session, user.id) is None
    export = create_export(session, owner=user, request=body)
    if idempotency_key:
        session.add(IdempotencyKey(user_id=user.id, key=idempotency_key, request_hash=request_hash, export_id=export.id))
    try:
        session.commit()
    except IntegrityError:  # a concurrent request with the same key won the race: answer as it did
        session.rollback()
        earlier = _replay(session, user.id, idempotency_key, request_hash) if idempotency_key else None
        if earlier is None:
            raise
        response.status_code = 200
        return export_view(session, earlier)
    from flows.starting import start_due_exports, starts_on_request  # orchestration: only where a run starts

    if starts_on_request():
        start_due_exports()  # this export, if it is its turn; else it waits in the queue (its view says why)
        session.refresh(export)
    response.headers["Location"] = f"/api/v1/exports/{export.id}"
    view = export_view(session, export)
    if first_secret:  # this request made the secret its events are signed with: the one time it is shown
        view.webhook_secret = signing_secret(account_webhook(session, user.id))
    return view


@router.post("/estimate", response_model=Estimate, summary="Preflight an export request")
def estimate_export(body: ExportRequest, session: SessionDep, user: UserDep) -> Estimate:
    """Everything `POST /exports` checks, the size it would render, and the earlier export of yours whose
    identical render it would reuse (`reuses_export`), without creating anything."""
    plan = plan_export(session, owner=user, request=body, check_limit=False)
    reuses = reusable_for_plan(artifact_store(), owner_id=user.id, tool=plan.tree.to_json(),
                               grid=plan.grid.to_dict(), compression=body.compression, resampling=plan.resampling)
    session.rollback()
    return plan.estimate.model_copy(update={"reuses_export": reuses})


@router.get("", response_model=ExportPage, summary="List your exports")
def list_exports(
    session: SessionDep, user: UserDep,
    status: Annotated[ExportStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> ExportPage:
    """Your exports, newest first, optionally only those in one status."""
    if settle_gone_runs(owner_id=user.id):  # runs here whose command died: listed as they really are
        session.expire_all()
    query = select(Export).where(Export.owner_id == user.id)
    if status is not None:
        query = query.where(Export.status == status)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(Export.id.desc()).offset(offset).limit(limit)).all()
    return ExportPage(items=[export_view(session, e) for e in rows], total=total, limit=limit, offset=offset)


@router.get("/{export_id}", response_model=ExportView, summary="Follow an export")
def read_export(export_id: RowId, session: SessionDep, user: UserDep) -> ExportView:
    """Status, progress, per-target status and result, error."""
    return export_view(session, get_export(session, owner=user, export_id=export_id))


@router.get("/{export_id}/logs", response_model=list[LogLineView], summary="An export's own log")
def read_export_log(export_id: RowId, session: SessionDep, user: UserDep) -> list[LogLineView]:
    """What happened to the export, oldest first: the order, its claims and status changes, the render, each
    delivery attempt, the end."""
    return export_log_view(session, owner=user, export_id=export_id)


@router.get("/{export_id}/webhooks", response_model=list[WebhookAttemptView], summary="An export's webhook attempts")
def read_webhook_attempts(export_id: RowId, session: SessionDep, user: UserDep) -> list[WebhookAttemptView]:
    """Every POST of the export's status changes to its webhook, oldest first: the receiver's answer or the
    error, and whether another attempt follows."""
    return webhook_attempts_view(session, owner=user, export_id=export_id)


@router.post("/{export_id}/cancel", response_model=ExportView, summary="Cancel an export")
def cancel(export_id: RowId, session: SessionDep, user: UserDep) -> ExportView:
    """End an unfinished export in `error` ("cancelled by its owner") and cancel its flow run."""
    from flows.starting import cancel_export  # it stops the export's flow run

    cancel_export(session, owner=user, export_id=export_id)
    session.expire_all()
    return export_view(session, get_export(session, owner=user, export_id=export_id))


@router.post("/{export_id}/retry-delivery", status_code=202, response_model=ExportView, summary="Retry delivery")
def retry_delivery(
    export_id: RowId, session: SessionDep, user: UserDep, background: BackgroundTasks,
    target: Annotated[int | None, Query(ge=0, le=9, description="Only this target (its position); default: "
                                                                  "every target not yet delivered.")] = None,
) -> ExportView:
    """Deliver a finished export's rendered file again (no re-rendering): on the retry-delivery deployment when
    a Prefect API is configured, else in this server's process."""
    target_ids = reopen_for_delivery(session, owner=user, export_id=export_id, position=target)
    from flows.starting import start_retry_delivery_run, starts_on_request

    if starts_on_request():
        start_retry_delivery_run(export_id, target_ids)
    else:
        background.add_task(_retry_here, export_id, target_ids)
    session.expire_all()
    return export_view(session, get_export(session, owner=user, export_id=export_id))


def _retry_here(export_id: RowId, target_ids: list[int]) -> None:
    from flows.export_flow import retry_delivery_flow

    try:
        retry_delivery_flow(export_id, target_ids)
    except Exception:  # the flow's hooks have recorded the failure on the row
        pass

