"""Start the exports that are due (the poller's and a request's one way to start), and cancel exports.

Starting claims rows first (`flows.services.queue.claim_due`: pending -> submitted under a lock), so two starters
never both start one export, and no start takes the cluster or a user past their limits.
"""

from __future__ import annotations

import logging

from sqlmodel import Session

from flows.capacity import prefect_api_configured, render_slots
from flows.notify import announce
from flows.services.queue import claim_due
from flows.services.settling import clean_partial_deliveries
from flows.services.status import advance_export, fail_export, release_claim, set_export_fields
from flows.services.views import get_export
from models.db import get_engine
from models.errors import Conflict
from models.settings import get_settings
from models.status import ExportStatus
from models.tables import Export, User

logger = logging.getLogger(__name__)

CANCELLED = "cancelled by its owner"


def starts_on_request() -> bool:
    """Whether requests start their flow runs at once (GEOSHIP_START_ON_REQUEST, else when Prefect is configured)."""
    setting = get_settings().start_on_request
    return prefect_api_configured() if setting is None else setting


def prepare_to_start() -> None:
    """Import what creating a flow run needs and reach Prefect once: the API's first request that starts an export
    would otherwise pay for both (about 1.3 s here). Raises when Prefect cannot be reached."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment  # noqa: F401 - imported now, for the first request

    with get_client(sync_client=True) as client:
        failure = client.api_healthcheck()  # returned, not raised
    if failure is not None:
        raise failure


def start_due_exports(deployment: str | None = None, limit: int | None = None) -> list[int]:
    """Claim the exports due to start (`flows.services.queue`: fairly, within the render slots and each user's limit;
    at most `limit`) and create a flow run of the export deployment for each, without waiting for them.
    Returns the ids whose runs were created.

    The one way exports start: the poller calls it on its schedule, a request calls it at once (when
    Prefect is configured). A run that cannot be created leaves its export pending, saying why, for the next
    start; once an export has used its `max_attempts`, it ends in error with the reason.
    """
    from prefect.deployments import run_deployment

    deployment = deployment or get_settings().export_deployment
    started = []
    for export_id in claim_due(render_slots(), limit):
        try:
            # Not a subflow of whoever starts it (the poller's run): each export's run stands on its own.
            flow_run = run_deployment(name=deployment, parameters={"export_id": export_id}, timeout=0,
                                      flow_run_name=f"export-{export_id}", as_subflow=False)
        except Exception as exc:  # Prefect unreachable, deployment missing
            _not_started(export_id, f"could not create its flow run on {deployment} ({exc})")
            continue
        set_export_fields(export_id, flow_run_id=str(flow_run.id))
        started.append(export_id)
    announce()  # the claims just made, and any order not yet told
    return started


def start_next() -> list[int]:
    """Hand-off: a run that has just freed a render slot (its render is done) or its owner's running place (it
    ended) starts whatever is due now, so a queue drains as fast as renders finish rather than once per poll.

    Only where requests start runs too (a Prefect server with the export deployment); never raises, since a run's
    own outcome must not depend on starting someone else's (the poller remains the safety net).
    """
    if not starts_on_request():
        return []
    try:
        return start_due_exports()
    except Exception:  # the database or Prefect unreachable for a moment: the next poll starts them
        logger.warning("could not start the next due exports; the poller will", exc_info=True)
        return []


def _not_started(export_id: int, reason: str) -> None:
    with Session(get_engine()) as session:
        attempts = session.get(Export, export_id).attempts
    if attempts >= get_settings().max_attempts:
        fail_export(export_id, f"{reason}; gave up after {attempts} attempt(s)")
    else:
        release_claim(export_id, reason)
    logger.warning("export %s: %s", export_id, reason)


def start_retry_delivery_run(export_id: int, target_ids: list[int]) -> str:
    """Create the retry-delivery flow run of a reopened export on its deployment."""
    from prefect.deployments import run_deployment

    flow_run = run_deployment(name=get_settings().retry_delivery_deployment, timeout=0,
                              parameters={"export_id": export_id, "target_ids": target_ids},
                              flow_run_name=f"export-{export_id}-retry-delivery")
    set_export_fields(export_id, flow_run_id=str(flow_run.id))
    return str(flow_run.id)


def cancel_export(session, *, owner: User, export_id: int) -> None:
    """End the owner's unfinished export in error ("cancelled"), ask Prefect to cancel its flow run (its worker
    stops the process and with it the run's Ray actors; an in-process render stops at its next tile), and
    remove partial uploads."""
    export = get_export(session, owner=owner, export_id=export_id)
    if export.status.is_final or not advance_export(export_id, ExportStatus.error, error=CANCELLED):
        raise Conflict(f"export {export_id} has already finished ({export.status.value}); nothing to cancel")
    if export.flow_run_id and prefect_api_configured():
        _cancel_flow_run(export.flow_run_id)
    clean_partial_deliveries(export_id)
    announce(export_id, events=prefect_api_configured())


def _cancel_flow_run(flow_run_id: str) -> None:
    """Move the flow run to Cancelling: its worker stops the process, and with it the run's Ray actors."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    try:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run_id, Cancelling(message=CANCELLED), force=True)
    except Exception as exc:  # the row is already final; a run that cannot be told will find that out
        logger.warning("could not cancel flow run %s: %s", flow_run_id, exc)
