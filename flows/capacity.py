"""How many renders run at once across the cluster, and each one's share of it.

The limit is a Prefect global concurrency limit, `geoship-renders`, so operators see and change it in the
Prefect UI. Each render holds one slot while it renders, on a lease that its process renews: a worker killed
while rendering gives its slot back when the lease runs out. The limit is GEOSHIP_MAX_CONCURRENT_RENDERS, or
else one render per GEOSHIP_RENDER_CPUS of the Ray cluster's CPUs, and every render's actor pool gets the
cluster's CPUs divided by it.

Prefect keeps leases in the server's memory unless told otherwise (PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE). A
server restarted with in-memory leases forgets them but not the slots they took, so those slots would stay
taken for good; `reclaim_leaked_slots` (run by the reconciler) gives back slots that no rendering export holds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from sqlmodel import Session, func, select

from models.db import get_engine
from models.settings import get_settings
from models.status import ExportStatus
from models.tables import Export

logger = logging.getLogger(__name__)

RENDER_LIMIT = "geoship-renders"
# A slot whose holder stops renewing it (the process died) is free again this long after the last renewal.
LEASE_SECONDS = 60.0
# Slots taken with no render to hold them are given back only when two looks this far apart both see them.
LEAK_CONFIRM_SECONDS = 5.0


def limit_for(cpus: int) -> int:
    """Renders at once on a cluster of `cpus` CPUs."""
    settings = get_settings()
    return settings.max_concurrent_renders or max(1, cpus // settings.render_cpus)


def pool_share(cpus: int, limit: int) -> int:
    """Tile actors of one render when `limit` renders share `cpus` CPUs."""
    return max(1, cpus // limit)


def _cluster_cpus() -> int:
    from ray_render.cluster import cluster_cpus, ensure_ray  # Ray only where a cluster is joined

    settings = get_settings()
    ensure_ray(settings.ray_address, settings.ray_num_cpus)
    return cluster_cpus()


def render_pool_size() -> int:
    """Tile actors a render gets on the cluster as it is now (joining it): its share, or GEOSHIP_POOL_SIZE."""
    cpus = _cluster_cpus()
    return _pool_size(cpus, limit_for(cpus))


def _pool_size(cpus: int, limit: int) -> int:
    return get_settings().pool_size or pool_share(cpus, limit)


def size_render_limit(cpus: int) -> int:
    """Create or resize the global limit for a cluster of `cpus` CPUs; returns the limit."""
    limit = limit_for(cpus)
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(RENDER_LIMIT, limit)
        except ObjectAlreadyExists:  # another run created it between this one's read and create: update it
            client.upsert_global_concurrency_limit_by_name(RENDER_LIMIT, limit)
    return limit


def render_slots() -> int:
    """How many renders may run at once: the setting, else the global limit as the last render sized it, else
    sized now from the Ray cluster when one is known here (joined, or RAY_ADDRESS), else one until the first
    render sizes it. Starting exports never starts a Ray instance of its own (the API process has none)."""
    configured = get_settings().max_concurrent_renders
    if configured:
        return configured
    with get_client(sync_client=True) as client:
        try:
            return client.read_global_concurrency_limit_by_name(RENDER_LIMIT).limit
        except ObjectNotFound:
            pass
    import ray

    if ray.is_initialized() or get_settings().ray_address or os.environ.get("RAY_ADDRESS"):
        return size_render_limit(_cluster_cpus())
    return 1


def prefect_api_configured() -> bool:
    """Whether a Prefect server is configured (rather than Prefect's embedded temporary one)."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


@contextmanager
def render_slot() -> Iterator[int]:
    """Hold one render slot for the block (waiting for one if all are taken); yields this render's actor pool
    size, its share of the cluster.

    Only with a Prefect server: on the embedded defaults the command rendering is the only starter there is,
    and Prefect's temporary server (gone with the command) runs no service that would take back the slot of
    a command killed mid-render, so a slot held there could outlive its holder for good.
    """
    cpus = _cluster_cpus()
    if not prefect_api_configured():
        yield get_settings().pool_size or cpus
        return
    limit = size_render_limit(cpus)
    # A lease the server forgot (restarted with in-memory leases) must not kill a render that is under way:
    # renewal failures are logged, and `reclaim_leaked_slots` settles the count afterwards.
    # Counted as held here from before the slot is taken until after it is given back, so that no look at the
    # limit from this process (`others_rendering`) ever counts this render's slot as another process's.
    with _holding(), concurrency(RENDER_LIMIT, occupy=1, lease_duration=LEASE_SECONDS, strict=True,
                                 raise_on_lease_renewal_failure=False):
        yield _pool_size(cpus, limit)


_held = [0]  # render slots this process's renders hold, or are about to take or have just given back
_held_lock = threading.Lock()


@contextmanager
def _holding() -> Iterator[None]:
    with _held_lock:
        _held[0] += 1
    try:
        yield
    finally:
        with _held_lock:
            _held[0] -= 1


def others_rendering(client) -> bool:
    """Whether a render of another process holds a render slot now; asks Prefect's server with `client` (sync)."""
    try:
        active = client.read_global_concurrency_limit_by_name(RENDER_LIMIT).active_slots
    except ObjectNotFound:
        return False
    with _held_lock:
        return active > _held[0]


def _rendering_now() -> int:
    with Session(get_engine()) as session:
        return session.exec(select(func.count()).select_from(Export)
                            .where(Export.status == ExportStatus.rendering)).one()


def _slot_excess(client) -> int:
    """Slots the render limit counts as taken beyond the exports rendering now (each holds one)."""
    try:
        active = client.read_global_concurrency_limit_by_name(RENDER_LIMIT).active_slots
    except ObjectNotFound:
        return 0
    return active - _rendering_now()


def reclaim_leaked_slots(confirm_seconds: float = LEAK_CONFIRM_SECONDS) -> int:
    """Give back render slots that no render holds; returns how many.

    A render takes its slot just before its export moves to `rendering` and gives it back just after it leaves,
    so one look may catch a render between the two; only an excess seen by two looks `confirm_seconds` apart
    (the smaller of the two) is given back.
    """
    with get_client(sync_client=True) as client:
        excess = _slot_excess(client)
        if excess <= 0:
            return 0
        time.sleep(confirm_seconds)
        excess = min(excess, _slot_excess(client))
        if excess <= 0:
            return 0
        client.release_concurrency_slots(names=[RENDER_LIMIT], slots=excess, occupancy_seconds=confirm_seconds)
    logger.warning("gave back %s render slot(s) that no render held (a lease the Prefect server forgot)", excess)
    return excess
