"""Connect to Ray: a running cluster when an address is given, else a local one started here."""

from __future__ import annotations

import logging
import os

import ray

# Ray 2.60 turns token auth on for new local clusters and reports usage to the internet; neither fits
# a local embedded run (no network). An operator's explicit setting still wins.
_LOCAL_DEFAULTS = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def ensure_ray(address: str | None = None, num_cpus: int | None = None, dashboard: bool = False) -> None:
    """Initialise Ray once per process: join `address` (or RAY_ADDRESS), else start a local instance."""
    if ray.is_initialized():
        return
    _cluster_errors_to_stderr()
    for key, value in _LOCAL_DEFAULTS.items():
        os.environ.setdefault(key, value)
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        # "local", not None: with no address Ray joins whatever cluster /tmp/ray/ray_current_cluster names (a
        # `ray start`, a test's `Cluster`, or a dead one from a killed process), then refuses num_cpus.
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=dashboard, log_to_driver=False,
                 logging_level=logging.WARNING)


def _cluster_errors_to_stderr() -> None:
    """Have Ray print the errors its cluster reports to this driver (such as a worker that died under a task, which
    geoship retries) on stderr. Ray prints them on stdout whatever `log_to_driver` says, and a command's stdout is
    its answer: `geoship export --json` printed "(raylet) A worker died ..." before its JSON."""
    from ray._private import worker

    if getattr(worker.print_to_stdstream, "to_stderr", False):
        return
    printing = worker.print_to_stdstream

    def to_stderr(data, ignore_prefix: bool):
        printing({**data, "is_err": True}, ignore_prefix)

    to_stderr.to_stderr = True
    worker.print_to_stdstream = to_stderr


def cluster_cpus() -> int:
    """CPUs the cluster offers to tasks and actors."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def leave_ray() -> None:
    """Disconnect from Ray now, when this process has no more use for it (a local instance stops with it).

    Left to the exit, Ray's own handler first sleeps half a second so that workers' log lines reach the
    terminal; geoship's never do (`log_to_driver=False`), so that wait is only a slower exit.
    """
    if ray.is_initialized():
        ray.shutdown()
