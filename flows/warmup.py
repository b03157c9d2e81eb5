"""Start what a flow run here will need, side by side rather than one after the other."""

from __future__ import annotations

import threading

from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from models.settings import get_settings
from ray_render.cluster import ensure_ray


def start_services() -> None:
    """Start Ray here while Prefect's temporary server (when no PREFECT_API_URL is set) starts on a thread.

    Both would otherwise start one after the other on the way to the first tile: the server when the flow
    run begins, Ray when its render task does. Both are idempotent, so the flow then finds them running.
    """
    def start_prefect() -> None:
        with get_client(sync_client=True) as client:  # starts the temporary server on first use
            client.api_healthcheck()

    starter = threading.Thread(target=start_prefect, name="prefect-server-start", daemon=True)
    if not PREFECT_API_URL.value():
        starter.start()
    settings = get_settings()
    ensure_ray(settings.ray_address, settings.ray_num_cpus)
    if starter.is_alive():
        starter.join()
