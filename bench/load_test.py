"""Load test: production mode on this machine, six users submitting sixty small exports in ten seconds.

Starts, in a temporary directory: PostgreSQL (geoship's and Prefect's databases), a Ray head (`ray start --head
--block`, so it stops with its process group), `prefect server start`, the deployments of prefect.yaml, two
process workers, and `geoship serve` with immediate start. Then six users POST sixty exports through the API
within ten seconds, the first user with a backlog of twenty in the first two seconds and the other five eight
each after it, so that a queue that served users in order of arrival would show.

While it runs, it samples every half second: the exports' rows (when each left `pending`), the latency and
status of the API's read endpoints (as clients polling would), and the resident memory of every process the
services started (the whole tree: servers, workers, flow runs, Ray). At the end it reports whether all sixty
succeeded, none stuck, none started twice (flow runs per export, from Prefect), each user's wait until their
first export started, request latency p50/p99 and the 5xx count, and the peak memory.

Run:  .venv/bin/python bench/load_test.py [--renders 2] [--timeout 900]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

import httpx  # noqa: E402
import psutil  # noqa: E402
import sqlalchemy  # noqa: E402

from tests.conftest import SMALL_AOI, SMALL_SCENES  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.postgres import ThrowawayPostgres  # noqa: E402
from tests.support.processes import Service  # noqa: E402

USERS = [f"user{n}" for n in range(6)]
FINAL = {"success", "error"}


def run(command: list[str], env: dict) -> str:
    import subprocess

    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def schedule() -> list[tuple[float, str]]:
    """(seconds after the start, user) for each of the sixty requests: user0's twenty in the first two seconds,
    then the other five users' eight each, interleaved, over the next eight."""
    first = [(2.0 * i / 20, USERS[0]) for i in range(20)]
    rest = [(2.0 + 8.0 * i / 40, USERS[1 + i % 5]) for i in range(40)]
    return first + rest


class Production:
    """Every production service on this machine, in `home`; `stop()` ends them all."""

    def __init__(self, home: Path, renders: int):
        self.home = home
        self.services: list[Service] = []
        self.postgres = ThrowawayPostgres(database="geoship")
        self.renders = renders

    def start(self) -> None:
        geoship_url = self.postgres.start()
        engine = sqlalchemy.create_engine(geoship_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text('CREATE DATABASE "prefect"'))
        engine.dispose()
        self.geoship_url = geoship_url
        prefect_port, api_port, ray_port = free_port(), free_port(), free_port()
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("GEOSHIP_", "PREFECT_", "RAY_"))}
        self.env = {
            **keep, "GEOSHIP_HOME": str(self.home / "geoship"), "GEOSHIP_DATABASE_URL": geoship_url,
            "GEOSHIP_REPO_DIR": str(ROOT), "GEOSHIP_MAX_CONCURRENT_RENDERS": str(self.renders),
            "GEOSHIP_PUBLIC_URL": f"http://127.0.0.1:{api_port}", "RAY_ADDRESS": f"127.0.0.1:{ray_port}",
            "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
            "PREFECT_HOME": str(self.home / "prefect"), "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
            "PREFECT_API_DATABASE_CONNECTION_URL":
                f"postgresql+asyncpg://postgres@127.0.0.1:{self.postgres.port}/prefect",
            "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect.server.concurrency.lease_storage.filesystem",
        }
        self.api = f"http://127.0.0.1:{api_port}"
        self.prefect = f"http://127.0.0.1:{prefect_port}/api"
        run([str(BIN / "geoship"), "db", "upgrade"], self.env)
        ray_temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's sockets live there
        ray_env = {k: v for k, v in self.env.items() if k != "RAY_ADDRESS"}
        self._service("ray", [str(BIN / "ray"), "start", "--head", "--block", "--num-cpus", str(os.cpu_count()),
                              "--port", str(ray_port), "--node-ip-address", "127.0.0.1", "--temp-dir", ray_temp,
                              "--include-dashboard", "false", "--disable-usage-stats"], ray_env)
        server = self._service("prefect-server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                                  "--port", str(prefect_port)])
        server.wait_for_http(f"{self.prefect}/health", 120)
        run([str(BIN / "prefect"), "work-pool", "create", "geoship", "--type", "process"], self.env)
        run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], self.env)
        for n in (1, 2):
            self._service(f"worker-{n}", [str(BIN / "prefect"), "worker", "start", "--pool", "geoship"])
        api = self._service("api", [str(BIN / "geoship"), "serve", "--port", str(api_port)])
        api.wait_for_http(f"{self.api}/health", 60)

    def _service(self, name: str, command: list[str], env: dict | None = None) -> Service:
        service = Service(name, command, env or self.env, self.home, cwd=ROOT)
        self.services.append(service)
        return service

    def add_users(self) -> dict[str, str]:
        """Each user with a project `alps` of the small sample scenes; returns their API tokens."""
        from cli.samples import write_scene

        paths = [str(write_scene(scene, self.home / "scenes")) for scene in SMALL_SCENES]
        tokens = {}
        for user in USERS:
            tokens[user] = run([str(BIN / "geoship"), "users", "create", user], self.env).strip().splitlines()[-1]
            as_user = {**self.env, "GEOSHIP_USER": user}
            run([str(BIN / "geoship"), "projects", "create", "alps"], as_user)
            run([str(BIN / "geoship"), "scenes", "add", *paths, "--project", "alps"], as_user)
        return tokens

    def tree_rss(self) -> int:
        """Resident bytes of every process the services run, children included (flow runs, Ray's workers)."""
        total = 0
        for service in self.services:
            try:
                root = psutil.Process(service.process.pid)
                family = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for process in family:
                try:
                    total += process.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
        return total

    def stop(self) -> None:
        workers = [s for s in self.services if s.name.startswith("worker")]
        for service in workers + [s for s in self.services if s not in workers]:
            service.stop()
        self.postgres.stop()


class Sampler(threading.Thread):
    """Every half second: rows' statuses (first time each left pending), read latency, the tree's memory."""

    def __init__(self, production: Production, tokens: dict[str, str]):
        super().__init__(daemon=True)
        self.production, self.tokens = production, tokens
        self.engine = sqlalchemy.create_engine(production.geoship_url)
        self.started_at: dict[int, float] = {}
        self.owner_of: dict[int, str] = {}
        self.rows: dict[int, tuple[str, int]] = {}
        self.reads: list[tuple[float, int]] = []
        self.peak_rss = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        clients = {u: httpx.Client(base_url=self.production.api, timeout=60,
                                   headers={"Authorization": f"Bearer {t}"}) for u, t in self.tokens.items()}
        turn = 0
        while not self.stopping.is_set():
            now = time.monotonic()
            with self.engine.connect() as connection:
                for export_id, status, attempts, user in connection.execute(sqlalchemy.text(
                        'SELECT export.id, export.status, export.attempts, "user".name FROM export '
                        'JOIN "user" ON "user".id = export.owner_id')):
                    self.owner_of[export_id] = user
                    self.rows[export_id] = (status, attempts)
                    if status != "pending":
                        self.started_at.setdefault(export_id, now)
            user = USERS[turn % len(USERS)]
            turn += 1
            began = time.monotonic()
            try:
                code = clients[user].get("/api/v1/exports").status_code
            except httpx.HTTPError:
                code = 599
            self.reads.append((time.monotonic() - began, code))
            self.peak_rss = max(self.peak_rss, self.production.tree_rss())
            self.stopping.wait(0.5)


def submit_all(production: Production, tokens: dict[str, str]) -> tuple[dict[int, float], list[tuple[float, int]]]:
    """POST the sixty exports on schedule; returns {export id: when it was submitted} and (latency, status)."""
    submitted: dict[int, float] = {}
    posts: list[tuple[float, int]] = []
    body = {"project": "alps", "aoi": SMALL_AOI, "resolution": 120}
    start = time.monotonic()

    def post(at: float, user: str) -> None:
        time.sleep(max(0.0, start + at - time.monotonic()))
        began = time.monotonic()
        try:
            response = httpx.post(f"{production.api}/api/v1/exports", json=body, timeout=60,
                                  headers={"Authorization": f"Bearer {tokens[user]}"})
            code = response.status_code
        except httpx.HTTPError:
            code, response = 599, None
        posts.append((time.monotonic() - began, code))
        if response is not None and code == 201:
            submitted[response.json()["id"]] = began

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda item: post(*item), schedule()))
    return submitted, posts


def flow_runs_per_export(prefect: str) -> Counter:
    """How many flow runs Prefect has for each export (runs are named export-N)."""
    runs = httpx.post(f"{prefect}/flow_runs/filter", timeout=60,
                      json={"flow_runs": {"name": {"like_": "export-"}}, "limit": 200}).json()
    return Counter(run["name"] for run in runs if run["name"].removeprefix("export-").isdigit())


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=2, help="GEOSHIP_MAX_CONCURRENT_RENDERS (render slots)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for every export to end")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="geoship-load-") as home:
        production = Production(Path(home), args.renders)
        try:
            production.start()
            tokens = production.add_users()
            sampler = Sampler(production, tokens)
            sampler.start()
            began = time.monotonic()
            submitted, posts = submit_all(production, tokens)
            submit_seconds = time.monotonic() - began
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                if len(submitted) == len(sampler.rows) and all(s in FINAL for s, _ in sampler.rows.values()):
                    break
                time.sleep(1)
            drained = time.monotonic() - began
            sampler.stopping.set()
            sampler.join()
            runs = flow_runs_per_export(production.prefect)
            report(args, submitted, posts, sampler, runs, submit_seconds, drained)
        finally:
            production.stop()


def report(args, submitted, posts, sampler: Sampler, runs: Counter, submit_seconds: float, drained: float) -> None:
    statuses = Counter(status for status, _ in sampler.rows.values())
    first_wait = {}
    started_before = {}
    order = sorted(sampler.started_at, key=sampler.started_at.get)
    for user in USERS:
        mine = [e for e in submitted if sampler.owner_of.get(e) == user]
        first = min((e for e in mine if e in sampler.started_at), key=sampler.started_at.get, default=None)
        if first is not None:
            first_wait[user] = sampler.started_at[first] - submitted[first]
            started_before[user] = order.index(first)
    latencies = [seconds for seconds, _ in posts + sampler.reads]
    codes = Counter(code for _, code in posts + sampler.reads)
    twice = {name: n for name, n in runs.items() if n > 1}
    summary = {
        "renders": args.renders, "submitted": len(submitted), "submit_seconds": round(submit_seconds, 1),
        "statuses": dict(statuses), "drained_seconds": round(drained, 1),
        "stuck": [e for e, (s, _) in sampler.rows.items() if s not in FINAL],
        "started_twice": twice, "attempts_over_1": [e for e, (_, a) in sampler.rows.items() if a > 1],
        "first_start_wait_s": {u: round(w, 1) for u, w in first_wait.items()},
        "exports_started_before_users_first": started_before,
        "post_p50_ms": round(1000 * statistics.median(s for s, _ in posts)),
        "post_p99_ms": round(1000 * percentile([s for s, _ in posts], 0.99)),
        "read_p50_ms": round(1000 * statistics.median(s for s, _ in sampler.reads)),
        "read_p99_ms": round(1000 * percentile([s for s, _ in sampler.reads], 0.99)),
        "all_p99_ms": round(1000 * percentile(latencies, 0.99)),
        "status_codes": dict(codes), "5xx": sum(n for code, n in codes.items() if code >= 500),
        "peak_tree_rss_mib": round(sampler.peak_rss / 2**20),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
