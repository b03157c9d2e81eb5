"""Run an export's flow in this process on Prefect's local server, with a live progress bar."""

from __future__ import annotations

import threading

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlmodel import Session

from cli.common import err_console
from flows.status import claim_export
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


def run_export_now(export_id: int, show_progress: bool = True) -> None:
    """Claim a pending export and run its flow here; the flow's hooks record the outcome on the row."""
    if not claim_export(export_id):
        raise Conflict(f"export {export_id} is not pending; another runner has it")
    from flows.export_flow import export_flow  # Prefect is imported only when a flow runs

    if not show_progress:
        _run_quietly(export_flow, export_id)
        return
    columns = (TextColumn("export {task.fields[export_id]} [cyan]{task.fields[status]}[/cyan]"), BarColumn(),
               MofNCompleteColumn(), TextColumn("tiles"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as progress:
        task_id = progress.add_task("render", total=None, export_id=export_id, status="submitted")
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(export_id, progress, task_id, stop), daemon=True)
        watcher.start()
        try:
            _run_quietly(export_flow, export_id)
        finally:
            stop.set()
            watcher.join()
            with Session(get_engine()) as session:
                export = session.get(Export, export_id)
            progress.update(task_id, total=export.tiles_total or 1, completed=export.tiles_done,
                            status=export.status.value)


def _run_quietly(export_flow, export_id: int) -> None:
    """Run the flow; its failure is already recorded on the row by the hooks, so it is not re-raised."""
    try:
        export_flow(export_id)
    except Exception:  # the row holds the message; callers read the final status from it
        pass
