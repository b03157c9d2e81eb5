"""Render progress: written to the export row and to a Prefect progress artifact, throttled."""

from __future__ import annotations

import time

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from flows.services.status import record_progress
from models.errors import Conflict


class ProgressReporter:
    """A `on_progress(done, total)` callback for the renderer; writes at most every `interval` seconds."""

    def __init__(self, export_id: int, interval: float = 0.5):
        self.export_id = export_id
        self.interval = interval
        self._last = 0.0
        self._artifact_id = None

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done not in (0, total) and now - self._last < self.interval:
            return
        self._last = now
        if not record_progress(self.export_id, done, total):
            raise Conflict(f"export {self.export_id} is no longer rendering (cancelled or ended); stopping its render")
        percent = 100.0 * done / total if total else 100.0
        if self._artifact_id is None:
            self._artifact_id = create_progress_artifact(
                progress=percent, key=f"export-{self.export_id}-render",
                description=f"Tiles rendered for export {self.export_id}",
            )
        else:
            update_progress_artifact(artifact_id=self._artifact_id, progress=percent)
