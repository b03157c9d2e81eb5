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


@contextmanager
def without_prefect_heartbeats() -> Iterator[None]:
    """Flow runs started inside the block send no Prefect heartbeat events.

    Prefect's heartbeat thread sleeps in whole seconds and is joined when its run ends, which holds every flow run
    up to a second at its end. The runs this is for need no such beat: a delivery subflow lives inside its
    export's run, and a run in the `geoship` command's own process is watched by geoship's heartbeat above (the
    reconciler reads it, and marks the Prefect run crashed when it stops).
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
