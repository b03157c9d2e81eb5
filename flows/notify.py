"""Telling people about status changes: Prefect events at once, webhooks in the background (both from the
export log's outbox, so whatever cannot go now goes with the next call)."""

from __future__ import annotations

from flows.events import emit_transitions
from flows.webhooks import send_webhooks_soon


def announce(export_id: int | None = None, *, events: bool = True) -> None:
    """Send the status changes not yet told (one export's, or everyone's): as Prefect events unless `events` is
    False (no Prefect API here), and to webhooks. Never raises, never waits on a receiver."""
    if events:
        emit_transitions(export_id)
    send_webhooks_soon(export_id)
