"""A resident worker: runs the export deployments' flow runs in threads of one long-lived process.

Prefect's process worker polls its pool every 10 s (by default) and starts a new Python for every flow run, which
then imports Prefect, geoship and GDAL, joins Ray and starts its tile actors: seconds before the first tile, on
every export. This worker does all of that once. It polls Prefect every `GEOSHIP_WORKER_POLL_SECONDS` for the
deployments' scheduled runs (every `GEOSHIP_WORKER_BUSY_POLL_SECONDS` while runs of its own are in progress),
claims each run as any Prefect worker does (by proposing `Pending`, which the server grants to one claimant only,
so it may share the pool with process workers and other resident workers), and runs it here with Prefect's own flow
engine: the run's states, logs, task runs and subflows look as they do under any worker.

A run set to `Cancelling` (the Prefect UI, or `POST /exports/{id}/cancel`) ends its export in error, which stops
its render at the next tile, and is marked `Cancelled` once its thread has returned. A worker that is stopped
(SIGINT, SIGTERM) claims nothing more and lets its runs finish; one that dies leaves its exports to the
reconciler, which reads their silent heartbeats as the run's death and queues them again.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import Abort, ObjectNotFound
from prefect.flow_engine import run_flow
from prefect.flows import Flow
from prefect.states import Cancelled, Pending
from prefect.utilities.engine import propose_state_sync

from flows.capacity import others_rendering
from flows.heartbeat import without_prefect_heartbeats
from flows.hooks import export_id_of
from flows.notify import announce
from flows.services.settling import clean_partial_deliveries, this_process
from flows.services.status import fail_export, set_export_fields
from models.errors import NotFound
from ray_render.reserve import actor_reserve

logger = logging.getLogger(__name__)

CANCELLED_IN_PREFECT = "cancelled in Prefect (its flow run was set to Cancelling)"


@dataclass
class _Run:
    """A flow run this worker has claimed and runs on one of its threads."""

    flow_run: FlowRun
    future: Future
    cancelling: bool = False


class ResidentWorker:
    """Claims the scheduled flow runs of `flows` (deployment name -> the flow it runs) and runs up to `runs` of
    them at once on its own threads."""

    def __init__(self, flows: dict[str, Flow], runs: int = 4, poll_seconds: float = 0.25,
                 busy_poll_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self._flows_by_name = flows
        self._flows: dict[UUID, Flow] = {}  # deployment id -> flow, resolved by `start`
        self._runs = runs
        self.poll_seconds = poll_seconds
        # While its own runs are in progress, the worker asks Prefect for new runs and cancellations less often: at
        # 8 calls a second, Prefect's server alone took 9 % of a core from a render that saturates two cores
        # (bench/RESULTS.md), and a new run would mostly wait for a render slot anyway.
        self.busy_poll_seconds = max(busy_poll_seconds, poll_seconds)
        self._clock = clock
        self._asked = -math.inf  # when Prefect was last asked for new runs and cancellations
        self._threads = ThreadPoolExecutor(max_workers=runs, thread_name_prefix="flow-run")
        self._running: dict[UUID, _Run] = {}
        self._lock = threading.Lock()
        self._client: SyncPrefectClient | None = None  # one for the worker's life, opened by `start`

    def start(self) -> None:
        """Open the worker's Prefect client and find the deployments; NotFound names one that does not exist.

        One client for every poll: each new one loads the CA bundle, about 50 ms holding the GIL, which the
        runs on the other threads would wait for at every poll."""
        if self._client is None:
            self._client = get_client(sync_client=True).__enter__()
        for name, flow in self._flows_by_name.items():
            try:
                self._flows[self._client.read_deployment_by_name(name).id] = flow
            except ObjectNotFound:
                raise NotFound(f"deployment {name} is not on the Prefect server; create the deployments with "
                               "`prefect deploy --all`") from None

    def poll(self) -> list[UUID]:
        """One pass: forget the runs that have returned, end idle kept actors another process's render needs, pass
        on cancellations, and claim and start as many scheduled runs as there are free threads. Prefect is asked
        for cancellations and new runs at every poll while no run of this worker's is in progress, and at most
        every `busy_poll_seconds` while one is. Returns the ids of the runs started."""
        self._reap()
        self._yield_kept_actors()
        now = self._clock()
        if self._running and now - self._asked < self.busy_poll_seconds:
            return []
        self._asked = now
        self._pass_on_cancellations()
        free = self._runs - len(self._running)
        if free <= 0:
            return []
        due = self._client.get_scheduled_flow_runs_for_deployments(
            deployment_ids=list(self._flows), scheduled_before=datetime.now(UTC), limit=free)
        started = []
        for flow_run in due[:free]:
            if self._claim(flow_run):
                self._launch(flow_run)
                started.append(flow_run.id)
        return started

    def serve(self, stop: threading.Event) -> None:
        """Poll until `stop` is set, then wait for the runs in progress to return (`start` first)."""
        logger.info("resident worker: serving %s with %s thread(s), polling every %.2f s",
                    ", ".join(self._flows_by_name), self._runs, self.poll_seconds)
        while not stop.is_set():
            try:
                self.poll()
            except Exception:  # Prefect or the database away for a moment: try again at the next poll
                logger.warning("resident worker: poll failed", exc_info=True)
            stop.wait(self.poll_seconds)
        self.drain()

    def drain(self) -> None:
        """Claim nothing more; wait for every run in progress to return."""
        self._threads.shutdown(wait=True)
        if self._client is not None:
            self._reap()
            self._client.__exit__(None, None, None)
            self._client = None

    @property
    def running(self) -> list[UUID]:
        """The flow runs in progress here."""
        with self._lock:
            return list(self._running)

    def _claim(self, flow_run: FlowRun) -> bool:
        """Propose `Pending`: the server grants it to one claimant; any other worker's proposal is refused."""
        try:
            state = propose_state_sync(self._client, Pending(), flow_run_id=flow_run.id)
        except Abort:
            return False
        return state.is_pending()

    def _launch(self, flow_run: FlowRun) -> None:
        flow = self._flows[flow_run.deployment_id]
        with self._lock:
            self._running[flow_run.id] = _Run(flow_run, self._threads.submit(self._execute, flow, flow_run))

    def _execute(self, flow: Flow, flow_run: FlowRun) -> None:
        """Run one flow run to its end on this thread with Prefect's engine; its hooks record the outcome."""
        export_id = export_id_of(flow_run)
        if export_id is not None:  # whatever looks at the export next settles it if this process dies
            set_export_fields(export_id, runner=this_process())
        # geoship's own heartbeat on the row watches the run; Prefect's would hold each run's end up to a second.
        with without_prefect_heartbeats():
            logger.info("flow run %r (%s): started here", flow_run.name, flow_run.id)
            try:
                state = run_flow(flow, flow_run=flow_run, return_type="state")
            except BaseException:  # the engine records the run's failure itself; this thread lives on
                logger.exception("flow run %r (%s): ended with an exception", flow_run.name, flow_run.id)
            else:
                logger.info("flow run %r (%s): %s", flow_run.name, flow_run.id, state.name)

    def _reap(self) -> None:
        """Forget the runs whose threads have returned; a cancelled one is marked `Cancelled` now."""
        with self._lock:
            done = [run for run in self._running.values() if run.future.done()]
            for run in done:
                del self._running[run.flow_run.id]
        for run in done:
            if run.cancelling:
                self._client.set_flow_run_state(run.flow_run.id, Cancelled(message=CANCELLED_IN_PREFECT), force=True)

    def _yield_kept_actors(self) -> None:
        """End this process's idle tile actors (`ray_render.reserve`) as soon as another process's render holds a
        render slot: an idle actor holds its CPU in Ray's accounting, and that render's actors need it."""
        reserve = actor_reserve()
        if reserve is None or not reserve.idle:
            return
        if others_rendering(self._client):
            ended = reserve.clear()
            logger.info("ended %s idle tile actor(s): another process is rendering", ended)

    def _pass_on_cancellations(self) -> None:
        """End the exports of the runs here that were set to `Cancelling`: each render stops at its next tile."""
        with self._lock:
            watched = [run for run in self._running.values() if not run.cancelling]
        if not watched:
            return
        cancelling = self._client.read_flow_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[run.flow_run.id for run in watched]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.CANCELLING]))))
        ids = {flow_run.id for flow_run in cancelling}
        for run in watched:
            if run.flow_run.id not in ids:
                continue
            run.cancelling = True
            export_id = export_id_of(run.flow_run)  # a run started with a request has made its row by now
            if export_id is not None and fail_export(export_id, CANCELLED_IN_PREFECT):
                clean_partial_deliveries(export_id)
                announce(export_id)
            logger.info("flow run %s: cancelling (export %s)", run.flow_run.id, export_id)
