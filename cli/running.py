"""Run an export's flow in this process on Prefect's local server, with a live progress bar."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlmodel import Session

from cli.common import EXIT_INTERRUPTED, err_console
from cli.guardian import guard_helpers
from flows.heartbeat import without_prefect_heartbeats
from flows.services.settling import remove_working_files, this_process
from flows.services.status import claim_export, fail_export, set_export_fields
from models.db import get_engine
from models.errors import Conflict
from models.tables import Export


def _watch(export_id: int, progress: Progress, task_id, stop: threading.Event) -> None:
    """Mirror the export row's status and tile counts onto the progress bar until told to stop."""
    while not stop.wait(0.25):
        with Session(get_engine()) as session:
            export = session.get(Export, export_id)
        total = export.tiles_total or None
        progress.update(task_id, total=total, completed=export.tiles_done, status=export.status.value)


def run_export_now(export_id: int) -> None:
    """Claim a pending export and run its flow here, with a progress bar on stderr; the flow's hooks
    record the outcome on the row."""
    if not claim_export(export_id):
        raise Conflict(f"export {export_id} is not pending; another runner has it")
    # Whatever looks at the export next settles it if this process dies without a word (SIGKILL).
    set_export_fields(export_id, runner=this_process())
    from flows.export_flow import export_flow  # Prefect is imported only when a flow runs
    from flows.warmup import start_services
    from ray_render.cluster import leave_ray

    start_services()
    guard_helpers()  # Prefect's temporary server and Ray go with this process, even on SIGKILL
    try:
        with without_prefect_heartbeats():  # geoship's own heartbeat watches a run in this process
            _run_with_progress(export_id, export_flow, export_id)
    finally:
        leave_ray()


def retry_delivery_now(export_id: int, target_ids: list[int]) -> None:
    """Run the retry-delivery flow of a reopened export here; its hooks record the outcome on the row."""
    from flows.export_flow import retry_delivery_flow

    with without_prefect_heartbeats():
        _run_with_progress(export_id, retry_delivery_flow, export_id, target_ids)


def _run_with_progress(export_id: int, flow, *args) -> None:
    columns = (TextColumn("export {task.fields[export_id]} [cyan]{task.fields[status]}[/cyan]"), BarColumn(),
               MofNCompleteColumn(), TextColumn("tiles"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as progress:
        task_id = progress.add_task("render", total=None, export_id=export_id, status="submitted")
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(export_id, progress, task_id, stop), daemon=True)
        watcher.start()
        try:
            with _interrupts_end(export_id):
                _run_quietly(flow, *args)
        finally:
            stop.set()
            watcher.join()
            with Session(get_engine()) as session:
                export = session.get(Export, export_id)
            progress.update(task_id, total=export.tiles_total or 1, completed=export.tiles_done,
                            status=export.status.value)


INTERRUPTED = "interrupted: the command running the export was stopped before it finished"


@contextmanager
def _interrupts_end(export_id: int):
    """While the flow runs here, SIGINT or SIGTERM ends the export in error and exits at once.

    Ctrl-C reaches the whole process group, so Prefect's temporary local server dies with it; Prefect's own
    crash handling would then retry reporting to that dead server for minutes, and its hooks are not
    guaranteed to run anyway. So the row is settled here, the writer's working files are removed, Ray (and
    with it the tile actors) is shut down, and the process exits with 130.
    """
    def settle_and_exit(signum, _frame):
        fail_export(export_id, f"{INTERRUPTED} ({signal.Signals(signum).name})")
        remove_working_files(export_id)
        import ray

        if ray.is_initialized():
            ray.shutdown()
        err_console.print(f"\n[red]interrupted:[/red] export {export_id} ended in error")
        os._exit(EXIT_INTERRUPTED)

    previous = {sig: signal.signal(sig, settle_and_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_quietly(flow, *args) -> None:
    """Run the flow; its failure is already recorded on the row by the hooks, so it is not re-raised."""
    try:
        flow(*args)
    except Exception:  # the row holds the message; callers read the final status from it
        pass
