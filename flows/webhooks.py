"""Each status change of an export POSTed to its webhook, signed, retried with backoff, every attempt recorded.

The export's log is the outbox, as for Prefect events (`flows.events`): a status change's line waits until it is
delivered, given up (after GEOSHIP_WEBHOOK_ATTEMPTS tries, or at once for a refused address or redirect), or
found to have no webhook to go to (`notified_at`). A sender claims a line by moving its `webhook_due_at` past the
time a POST can take, so two senders (a run and the poller) never POST the same attempt; a failed attempt sets
it to the next try's time. Delivery is at least once (a sender that dies after the POST but before recording it
is repeated by the next): the event's id, in the body and `X-Geoship-Delivery`, tells a receiver it has seen it.
Events of one export may arrive out of order when one of them waits for a retry; each carries its time.

Nothing here ever fails the work that calls it: runs hand the sending to a background thread
(`send_webhooks_soon`), which Python joins at exit, so a run's last event is sent before its process ends.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, or_, update
from sqlmodel import Session, select

from delivery.webhook import MAX_REDIRECTS, PostOutcome, post_event
from delivery.webhook_settings import account_webhook, signing_secret
from flows.events import EVENT_PREFIX, event_id
from flows.services.logbook import note
from models.db import get_engine
from models.settings import get_settings
from models.tables import Export, ExportLog, ExportTarget, WebhookAttempt
from models.timestamps import utcnow

logger = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_pending: set[Future] = set()
_lock = threading.Lock()


def _claim_seconds() -> float:
    """Longer than one attempt can take (each hop of its redirects may wait the whole timeout), with margin."""
    return get_settings().webhook_timeout_seconds * (MAX_REDIRECTS + 1) * 2 + 30


def backoff_seconds(attempt: int) -> float:
    """How long after failed attempt number `attempt` (1 first) the next one is due: 10 s, 30 s, 90 s..."""
    return get_settings().webhook_backoff_seconds * 3 ** (attempt - 1)


def event_body(session: Session, line: ExportLog, export: Export) -> bytes:
    """The JSON an event's webhook receives: the change, and the export's targets as they stand (their kind and
    status: a download link's URL is a bearer secret and stays out)."""
    targets = session.exec(select(ExportTarget).where(ExportTarget.export_id == export.id)
                           .order_by(ExportTarget.position)).all()
    public_url = get_settings().public_url.rstrip("/")
    return json.dumps({
        "id": str(event_id(line)),
        "type": f"{EVENT_PREFIX}{line.status.value}",
        "occurred_at": line.at.isoformat(),
        "status": line.status.value,
        "message": line.message,
        "export": {"id": export.id, "url": f"{public_url}/api/v1/exports/{export.id}",
                   "targets": [{"id": t.id, "kind": t.kind.value, "status": t.status.value} for t in targets]},
    }, separators=(",", ":")).encode()


def send_webhooks(export_id: int | None = None, limit: int = 100) -> int:
    """POST the status changes that are due (one export's, or everyone's); returns how many POSTs were made.
    Never raises."""
    try:
        return _send_due(export_id, limit)
    except Exception:  # the database away for a moment: the next caller sends them
        logger.warning("could not send webhooks now; they stay queued", exc_info=True)
        return 0


def send_webhooks_soon(export_id: int | None = None) -> None:
    """`send_webhooks` in a background thread, so that a slow receiver never holds up a run."""
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="geoship-webhooks")
        future = _executor.submit(send_webhooks, export_id)
        _pending.add(future)
    future.add_done_callback(_forget)


def _forget(future: Future) -> None:
    with _lock:
        _pending.discard(future)


def wait_for_background_sends(timeout: float | None = None) -> None:
    """Wait for the sends handed to the background thread so far (Python's exit does the same)."""
    with _lock:
        pending = list(_pending)
    wait(pending, timeout=timeout)


@dataclass(frozen=True)
class _Due:
    """One status change to POST, read in a short transaction and held as plain values while the POST runs:
    no database transaction stays open across a request to someone else's server."""

    line_id: int
    export_id: int
    event: str
    delivery_id: str
    url: str
    secret: str = field(repr=False)
    body: bytes = field(repr=False)


def _due(export_id: int | None, limit: int) -> list[_Due]:
    """The status changes whose webhook is due, with what to send; marks those with no webhook as done."""
    query = select(ExportLog).where(ExportLog.status.is_not(None), ExportLog.notified_at.is_(None),
                                    or_(ExportLog.webhook_due_at.is_(None), ExportLog.webhook_due_at <= utcnow()))
    if export_id is not None:
        query = query.where(ExportLog.export_id == export_id)
    due, nobody = [], []
    with Session(get_engine()) as session:
        for line in session.exec(query.order_by(ExportLog.id).limit(limit)).all():
            export = session.get(Export, line.export_id)
            account = account_webhook(session, export.owner_id)
            url = export.webhook_url or (account.url if account else None)
            if url is None or account is None:  # nobody asked to be told
                nobody.append(line.id)
                continue
            due.append(_Due(line.id, line.export_id, f"{EVENT_PREFIX}{line.status.value}", str(event_id(line)), url,
                            signing_secret(account), event_body(session, line, export)))
    if nobody:
        with get_engine().begin() as connection:
            connection.execute(update(ExportLog).where(ExportLog.id.in_(nobody)).values(notified_at=utcnow()))
    return due


def _claim(line_id: int) -> int | None:
    """Take the line for one attempt: its attempt number, or None when another sender has it or it is no longer
    due."""
    now = utcnow()
    with get_engine().begin() as connection:
        taken = connection.execute(
            update(ExportLog)
            .where(ExportLog.id == line_id, ExportLog.notified_at.is_(None),
                   or_(ExportLog.webhook_due_at.is_(None), ExportLog.webhook_due_at <= now))
            .values(webhook_due_at=now + timedelta(seconds=_claim_seconds())))
        if taken.rowcount != 1:
            return None
        return 1 + connection.execute(select(func.count(WebhookAttempt.id))
                                      .where(WebhookAttempt.log_id == line_id)).scalar_one()


def _send_due(export_id: int | None, limit: int) -> int:
    posts = 0
    for due in _due(export_id, limit):
        if (attempt := _claim(due.line_id)) is None:
            continue
        outcome = post_event(due.url, due.body, secret=due.secret, headers={
            "X-Geoship-Event": due.event, "X-Geoship-Delivery": due.delivery_id, "X-Geoship-Attempt": str(attempt)})
        posts += 1
        _record(due, attempt, outcome)
    return posts


def _record(due: _Due, attempt: int, outcome: PostOutcome) -> None:
    """Write the attempt and what follows from it: done, or due again after the backoff."""
    attempts = get_settings().webhook_attempts
    final = outcome.ok or not outcome.retry or attempt >= attempts
    now = utcnow()
    with Session(get_engine()) as session:
        session.add(WebhookAttempt(export_id=due.export_id, log_id=due.line_id, event=due.event, attempt=attempt,
                                   at=now, host=outcome.host, status_code=outcome.status_code, ok=outcome.ok,
                                   error=outcome.error, duration_ms=outcome.duration_ms, final=final))
        session.execute(update(ExportLog).where(ExportLog.id == due.line_id).values(
            notified_at=now if final else None,
            webhook_due_at=None if final else now + timedelta(seconds=backoff_seconds(attempt))))
        session.commit()
    if outcome.ok:
        return
    if final:
        tries = f"after {attempt} attempt{'s' if attempt > 1 else ''}" if outcome.retry else "without retrying"
        note(due.export_id, f"webhook to {outcome.host}: gave up on {due.event} {tries}: {outcome.error}", "warning")
    else:
        note(due.export_id, f"webhook to {outcome.host}: {due.event} attempt {attempt} of {attempts} failed "
                            f"({outcome.error}); next in {backoff_seconds(attempt):g} s", "warning")
