"""Settling exports whose run died: re-queue them while their attempts last, else end them in error; remove
what they left half-written.

The reconciler does this for runs on workers, by asking Prefect. On the embedded defaults nothing runs but the
command itself, so the command records who runs the export (`runner`: this machine, the process id and its
start time) and whatever next looks at the export (`status`, `run`, `export`, `serve`, the API) settles it
when that process is gone and its heartbeat silent: a `geoship export --wait` killed by SIGKILL (as the OOM
killer does) does not leave its export `rendering` for good.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session, select

from delivery.artifacts import artifact_store
from flows.services.status import RUNNING, advance_export, requeue_export
from models.db import get_engine
from models.settings import get_settings
from models.status import ExportStatus, TargetStatus
from models.tables import Export, ExportTarget
from models.timestamps import utcnow

logger = logging.getLogger(__name__)

# Beats this many heartbeats apart, missed in a row, make a silent run (with its process gone: a dead one).
SILENT_BEATS = 2


def clean_partial_deliveries(export_id: int) -> None:
    """Remove what unfinished deliveries of a failed or cancelled export left behind (multipart uploads, files)."""
    from delivery.registry import DELIVERIES  # the S3 and Dropbox SDKs: only when there is something to remove

    with Session(get_engine()) as session:
        for target in session.exec(select(ExportTarget).where(ExportTarget.export_id == export_id)):
            if target.status in (TargetStatus.delivering, TargetStatus.pending) and target.kind != "http":
                try:
                    DELIVERIES[target.kind].cleanup(session, target)
                except Exception as exc:  # best effort: the status is what must not lie
                    logger.warning("export %s: cleaning up target %s failed: %s", export_id, target.position, exc)
        session.commit()


def requeue_or_fail(export_id: int, attempts: int, reason: str, run: str | None) -> str:
    """A run that died: remove what it left half-written, then re-queue its export while it has runs left in its
    budget, else end it in error and remove its partial uploads. Returns "requeued" or "failed"."""
    remove_working_files(export_id)  # first: once re-queued, a new run may start writing there
    if attempts < get_settings().max_attempts and requeue_export(export_id, reason, run):
        return "requeued"
    if advance_export(export_id, ExportStatus.error, run=run, error=reason):
        clean_partial_deliveries(export_id)
    return "failed"


def remove_working_files(export_id: int) -> None:
    """The render's half-written files: the writer's working files, the blocks' spills and unfinished shards here,
    and the artifact store's temporary objects and unfinished uploads (`ArtifactStore.remove_unfinished`)."""
    # The renderer's modules bring rasterio: imported only when there is something to remove.
    from ray_render.blocks import remove_spills
    from ray_render.shards import SHARDS_DIR
    from ray_render.writer import working_files

    staged = artifact_store().staging_path(export_id)
    for leftover in working_files(staged):
        leftover.unlink(missing_ok=True)
    remove_spills(staged)
    shutil.rmtree(staged.parent / SHARDS_DIR, ignore_errors=True)
    try:
        removed = artifact_store().remove_unfinished(export_id)
    except Exception as exc:  # best effort: the store unreachable now must not keep the export's status from moving
        logger.warning("export %s: could not remove its unfinished uploads: %s", export_id, exc)
    else:
        if removed:
            logger.info("export %s: removed %s unfinished upload(s) from the artifact store", export_id, removed)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux: the host name alone says "this machine"
        return "-"


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot), which tells it from a later process given its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name before ")" may hold spaces


def this_process() -> str:
    """Who runs an export here: host, boot, pid and the pid's start time."""
    return f"{socket.gethostname()}/{_boot_id()}/{os.getpid()}/{_start_time(os.getpid())}"


def runner_gone(runner: str) -> bool:
    """Whether the recorded runner is a process of this machine that no longer exists (False when it is
    alive, or on another machine: not ours to judge)."""
    host, boot, pid, started = runner.split("/")
    if host != socket.gethostname():
        return False
    return boot != _boot_id() or _start_time(int(pid)) != started


def settle_if_gone(export: Export) -> str | None:
    """Settle one export run here whose process is gone and heartbeat silent; returns what was done, if anything."""
    if export.status not in RUNNING or not export.runner or not runner_gone(export.runner):
        return None
    last = export.heartbeat_at or export.updated_at
    if utcnow() - last <= timedelta(seconds=SILENT_BEATS * get_settings().heartbeat_seconds):
        return None
    pid = export.runner.split("/")[2]
    reason = f"the command running it (process {pid} on this machine) is gone, silent since {last.isoformat()}"
    action = requeue_or_fail(export.id, export.attempts, reason, export.flow_run_id)
    logger.warning("export %s %s: %s", export.id, action, reason)
    return action


def settle_gone_runs(owner_id: int | None = None) -> int:
    """Settle every export run on this machine whose process is gone (of one owner, or all); returns how many."""
    with Session(get_engine()) as session:
        query = select(Export).where(Export.status.in_(RUNNING), Export.runner.is_not(None))
        if owner_id is not None:
            query = query.where(Export.owner_id == owner_id)
        exports = session.exec(query).all()
    return sum(1 for export in exports if settle_if_gone(export))
