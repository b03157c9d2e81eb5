"""`geoship worker`: run the export deployments' flow runs in this long-lived process (flows/resident.py)."""

from __future__ import annotations

import logging
import os
import signal
import threading

import typer

from cli.common import EXIT_REFUSED, err_console


def worker(
    runs: int = typer.Option(None, min=1, help="Flow runs in progress at once (default: GEOSHIP_WORKER_RUNS, 4)"),
    poll_seconds: float = typer.Option(None, min=0.05, help="Seconds between polls of Prefect "
                                                            "(default: GEOSHIP_WORKER_POLL_SECONDS, 0.25)"),
) -> None:
    """Claim and run the `export` and `retry-delivery` deployments' flow runs here, with Prefect, geoship and GDAL
    imported and Ray joined once, instead of a new process per run. Runs beside (or instead of) `prefect worker
    start --pool geoship`. SIGINT or SIGTERM: claim nothing more and let the runs in progress finish; a second
    one: stop at once (the reconciler queues the unfinished exports again)."""
    from flows.capacity import prefect_api_configured, render_pool_size

    if not prefect_api_configured():
        err_console.print("error: PREFECT_API_URL: a worker serves a Prefect server's deployments; none is set")
        raise typer.Exit(EXIT_REFUSED)
    from flows.export_flow import export_flow, retry_delivery_flow
    from flows.resident import ResidentWorker
    from flows.warmup import start_services
    from models.errors import NotFound
    from models.settings import get_settings
    from ray_render.render import prestart_actors
    from ray_render.reserve import keep_actors, stop_keeping_actors

    settings = get_settings()
    resident = ResidentWorker({settings.export_deployment: export_flow,
                               settings.retry_delivery_deployment: retry_delivery_flow},
                              runs=runs or settings.worker_runs,
                              poll_seconds=poll_seconds or settings.worker_poll_seconds,
                              busy_poll_seconds=settings.worker_busy_poll_seconds)
    # The worker's own lines (runs claimed, their outcomes) on stderr; Prefect's console handler stays quiet, and
    # the runs' logs go to the Prefect API (the UI shows them).
    own = logging.StreamHandler()
    own.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name in ("flows.resident", "flows.starting"):
        logging.getLogger(name).addHandler(own)
        logging.getLogger(name).setLevel(logging.INFO)
    start_services()  # Ray joined before the first run, not on its way to the first tile
    if settings.worker_keep_actors_seconds > 0:  # each render's actors already running (ray_render.reserve)
        keep_actors(settings.worker_keep_actors_seconds)
        prestart_actors(render_pool_size(), settings.gdal_cache_mb)  # the first render's too
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        if stop.is_set():  # at once: Python's exit would join the flow-run threads first
            os._exit(128 + signum)
        err_console.print("stopping: no new runs; waiting for the runs in progress (again to stop at once)")
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        resident.start()
    except NotFound as exc:
        err_console.print(f"error: {exc}")
        raise typer.Exit(EXIT_REFUSED) from None
    try:
        resident.serve(stop)
    finally:
        stop_keeping_actors()
