"""Start an export's flow run the moment it is requested, and cancel exports.

Starting claims the row first (pending -> submitted, one conditional UPDATE), so the poller and an
immediate start never both start one export. A run that cannot be created releases the claim, leaving the
export pending for the poller.
"""

from __future__ import annotations

import logging

from sqlalchemy import update

from flows.hooks import clean_partial_deliveries
from flows.status import advance_export, claim_export, set_export_fields
from flows.views import get_export
from models.db import get_engine
from models.errors import Conflict
from models.settings import get_settings
from models.status import ExportStatus
from models.tables import Export, User
from models.timestamps import utcnow

logger = logging.getLogger(__name__)

CANCELLED = "cancelled by its owner"


def prefect_api_configured() -> bool:
    """Whether a Prefect server is configured (rather than Prefect's embedded temporary one)."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def starts_on_request() -> bool:
    """Whether requests start their flow runs at once (GEOSHIP_START_ON_REQUEST, else when Prefect is configured)."""
    setting = get_settings().start_on_request
    return prefect_api_configured() if setting is None else setting


def _release_claim(export_id: int) -> None:
    """submitted -> pending, only for a claim whose run was never created: the poller will try again."""
    statement = (update(Export).where(Export.id == export_id, Export.status == ExportStatus.submitted,
                                      Export.flow_run_id.is_(None))
                 .values(status=ExportStatus.pending, updated_at=utcnow()))
    with get_engine().begin() as connection:
        connection.execute(statement)


def start_export_run(export_id: int, deployment: str | None = None) -> str | None:
    """Claim a pending export and create its flow run on the export deployment without waiting for it.

    Returns the flow run id, or None when someone else had already claimed it or the run could not be
    created (then the export is pending again, for the poller).
    """
    from prefect.deployments import run_deployment

    if not claim_export(export_id):
        return None
    try:
        flow_run = run_deployment(name=deployment or get_settings().export_deployment, parameters={"export_id": export_id},
                                  timeout=0, flow_run_name=f"export-{export_id}")
    except Exception as exc:  # Prefect unreachable, deployment missing: the poller is the safety net
        logger.warning("export %s: could not start its flow run now (%s); it stays pending for the poller", export_id, exc)
        _release_claim(export_id)
        return None
    set_export_fields(export_id, flow_run_id=str(flow_run.id))
    return str(flow_run.id)


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


def _cancel_flow_run(flow_run_id: str) -> None:
    """Move the flow run to Cancelling: its worker stops the process, and with it the run's Ray actors."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    try:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run_id, Cancelling(message=CANCELLED), force=True)
    except Exception as exc:  # the row is already final; a run that cannot be told will find that out
        logger.warning("could not cancel flow run %s: %s", flow_run_id, exc)
