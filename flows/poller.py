"""The poller: claim pending exports and start one export flow run each (the safety net of submission)."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.deployments import run_deployment

from flows.status import advance_export, claim_pending_exports, set_export_fields
from models.status import ExportStatus

EXPORT_DEPLOYMENT = "export/export"


@task(name="claim-pending-exports")
def claim_pending(limit: int) -> list[int]:
    """Atomically move up to `limit` pending exports to submitted; returns the ids this run won."""
    return claim_pending_exports(limit)


@task(name="start-export-run")
def start_export_run(export_id: int, deployment: str) -> str:
    """Start the export flow's deployment for one claimed export, without waiting for it."""
    flow_run = run_deployment(
        name=deployment, parameters={"export_id": export_id}, timeout=0, flow_run_name=f"export-{export_id}",
    )
    set_export_fields(export_id, flow_run_id=str(flow_run.id))
    return str(flow_run.id)


@flow(name="poll-pending-exports")
def poll_pending_exports(limit: int = 20, deployment: str = EXPORT_DEPLOYMENT) -> list[int]:
    """Claim pending exports and start a flow run for each; a run that cannot start ends its export in error."""
    logger = get_run_logger()
    started = []
    for export_id in claim_pending(limit):
        try:
            start_export_run(export_id, deployment)
            started.append(export_id)
        except Exception as exc:
            logger.error("export %s: could not start its flow run: %s", export_id, exc)
            advance_export(export_id, ExportStatus.error, error=f"could not start the export flow run: {exc}")
    return started
