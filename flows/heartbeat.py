"""A running export flow's heartbeat: a thread that stamps `heartbeat_at` on the row every few seconds.

A process that dies (a killed worker, a machine gone) stops beating; the reconciler reads the stale stamp as
the run's death even when Prefect still shows the run as running.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flows.services.status import beat
from models.settings import get_settings

logger = logging.getLogger(__name__)


@contextmanager
def heartbeat(export_id: int) -> Iterator[None]:
    """Beat for `export_id` while the block runs."""
    stop = threading.Event()
    every = get_settings().heartbeat_seconds

    def run() -> None:
        while True:
            try:
                if not beat(export_id):
                    return  # finished: nothing left to vouch for
            except Exception as exc:  # a database blip must not kill the run; the next beat may get through
                logger.warning("export %s: heartbeat not recorded: %s", export_id, exc)
            if stop.wait(every):
                return

    thread = threading.Thread(target=run, name=f"heartbeat-export-{export_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
