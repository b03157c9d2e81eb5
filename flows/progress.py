"""Render progress: written to the export row and to a Prefect progress artifact, throttled, off the render's loop."""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import Future, ThreadPoolExecutor

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from flows.services.status import record_progress
from models.errors import Conflict


class ProgressReporter:
    """A `on_progress(done, total)` callback for the renderer; writes at most every `interval` seconds.

    The writes (a database update, then a call to Prefect's API: 20-50 ms together) run in a thread of their own:
    the render's driver loop calls this between two answers of its tile actors, and while it waited the actors ran
    out of work. A write that finds the export no longer rendering (cancelled, or ended by the reconciler) makes
    the next call raise `Conflict`, which stops the render. The last figure (all tiles done) is written before the
    call returns, so that a render whose export ended meanwhile fails inside the render, which then removes what
    it made. Use as a context manager around the render: leaving waits for the writes under way.
    """

    def __init__(self, export_id: int, interval: float = 0.5):
        self.export_id = export_id
        self.interval = interval
        self._last = 0.0
        self._artifact_id = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"progress-{export_id}")
        self._writing: Future | None = None
        self._failure: Exception | None = None

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._writer.shutdown(wait=True)

    def __call__(self, done: int, total: int) -> None:
        if self._failure is not None:
            raise self._failure
        last, first = done == total, done == 0
        now = time.monotonic()
        busy = self._writing is not None and not self._writing.done()
        if not (first or last) and (now - self._last < self.interval or busy):
            return  # too soon, or the last write is still under way: a later call carries a later figure
        self._last = now
        # The writer runs in this call's context: Prefect's artifact is then the task run's, as if written here.
        self._writing = self._writer.submit(contextvars.copy_context().run, self._write, done, total)
        if last:
            self._writing.result()
            if self._failure is not None:
                raise self._failure

    def _write(self, done: int, total: int) -> None:
        if self._failure is not None:
            return
        try:
            if not record_progress(self.export_id, done, total):
                raise Conflict(f"export {self.export_id} is no longer rendering (cancelled or ended); "
                               "stopping its render")
            percent = 100.0 * done / total if total else 100.0
            if self._artifact_id is None:
                self._artifact_id = create_progress_artifact(
                    progress=percent, key=f"export-{self.export_id}-render",
                    description=f"Tiles rendered for export {self.export_id}",
                )
            else:
                update_progress_artifact(artifact_id=self._artifact_id, progress=percent)
        except Exception as exc:  # raised in the render's thread, by its next call or on leaving
            self._failure = exc
