"""The poller: start the exports that are due, fairly and within the limits (the safety net of submission)."""

from __future__ import annotations

from prefect import flow, task

from flows.events import emit_transitions
from flows.starting import start_due_exports
from flows.webhooks import send_webhooks

EXPORT_DEPLOYMENT = "export/export"


@task(name="start-due-exports")
def start_due(limit: int, deployment: str) -> list[int]:
    """Claim the exports due to start and create a flow run for each; returns the ids started."""
    return start_due_exports(deployment, limit)


@flow(name="poll-pending-exports")
def poll_pending_exports(limit: int = 20, deployment: str = EXPORT_DEPLOYMENT) -> list[int]:
    """Start up to `limit` pending exports (`flows.services.queue` decides which); a run that cannot be created leaves
    its export pending for the next poll, and ends it in error once it has used its attempts. Then send the status
    changes' events and webhooks that no one has sent yet (new orders, changes made where Prefect was away,
    webhook retries that have come due)."""
    started = start_due(limit, deployment)
    emit_transitions()
    send_webhooks()
    return started
