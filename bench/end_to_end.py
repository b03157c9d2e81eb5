"""An export end to end, as a user orders it, against gdalwarp on the same job: from the order to `success`, with
a Prefect server and a Ray head already running.

Starts, in a temporary directory: a Ray head (`ray start --head`, the machine's CPUs) and `prefect server start`;
geoship keeps its embedded SQLite database and local artifact directory there. Registers compare_gdalwarp.py's
scenes (generated under bench/out/ once) as a project shared with one user per repeat, then alternates:
  geoship   `geoship export --project bench [--aoi] --srid 3857 --resolution R --wait --json`, a new process as a
            user runs it, each repeat as another user (an identical export of the same user would reuse the
            earlier file and render nothing);
  gdalwarp  the same mosaic, reprojection (and clip) into a deflate COG (compare_gdalwarp.run_gdalwarp).
With `--via api` the order is a POST to `geoship serve` instead, and `geoship worker` (the resident worker, on the
deployments of prefect.yaml) runs it; the time runs from the POST until a GET of the export says `success`.
Reports the medians and their ratio, the render's own time inside the export (`rendered.seconds`) and the rest
of it, the fixed cost (process start, Ray connection and actors, the flow, STAC, checksum, publish, link).
Run:  .venv/bin/python bench/end_to_end.py --job mosaic --size 6000 --resolution 10     (about 100 Mpx)
      .venv/bin/python bench/end_to_end.py --size 13000 --resolution 1.5 --repeats 2    (the 20,000 px job)
      .venv/bin/python bench/end_to_end.py --job mosaic --size 6000 --resolution 10 --via api
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
BIN = Path(sys.executable).parent

from compare_gdalwarp import OUT, job, job_arguments, run_gdalwarp, scenes  # noqa: E402

from tests.support.net import free_port  # noqa: E402
from tests.support.processes import Service  # noqa: E402


def geoship(args: list[str], env: dict, timeout: float = 3600) -> str:
    done = subprocess.run([str(BIN / "geoship"), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"geoship {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class PrefectDatabase:
    """The Prefect server's own PostgreSQL (as in the README's production setup), stopped like a service. On its
    default SQLite, concurrent writes end in "database is locked", which the server answers with 503 and the
    client retries after 2 s: up to 2 s of every export's time, at random (measured: bench/RESULTS.md)."""

    name = "prefect-postgresql"

    def __init__(self):
        from tests.support.postgres import ThrowawayPostgres

        os.environ["PATH"] = f"{os.environ['PATH']}:{':'.join(str(p) for p in Path('/usr/lib/postgresql').glob('*/bin'))}"
        self.server = ThrowawayPostgres(database="prefect")
        self.server.start()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.server.port}/prefect"

    def stop(self) -> None:
        self.server.stop()


def start_services(home: Path, prefect_database: str = "sqlite") -> tuple[list[Service], dict]:
    """A Ray head and a Prefect server (on `prefect_database`, sqlite or postgresql), and the environment a
    user's `geoship` runs in beside them."""
    ray_port, prefect_port = free_port(), free_port()
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("GEOSHIP_", "PREFECT_", "RAY_"))}
    env = {**keep, "GEOSHIP_HOME": str(home / "geoship"), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
           "PREFECT_HOME": str(home / "prefect"), "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect.server.concurrency.lease_storage.filesystem"}
    ray_temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's sockets live there
    before = []
    if prefect_database == "postgresql":
        before = [PrefectDatabase()]
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = before[0].url
    services = [*before,
        Service("ray", [str(BIN / "ray"), "start", "--head", "--block", "--num-cpus", str(os.cpu_count()),
                        "--port", str(ray_port), "--node-ip-address", "127.0.0.1", "--temp-dir", ray_temp,
                        "--include-dashboard", "false", "--disable-usage-stats"], env, home, cwd=ROOT),
        Service("prefect-server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                                   str(prefect_port)], env, home, cwd=ROOT),
    ]
    services[-1].wait_for_http(f"http://127.0.0.1:{prefect_port}/api/health", 120)
    return services, {**env, "RAY_ADDRESS": f"127.0.0.1:{ray_port}"}


def register(paths: list[Path], bands: str, users: list[str], env: dict) -> dict[str, str]:
    """The scenes as project `bench` of the acting user, shared with each of `users`; returns their API tokens."""
    geoship(["projects", "create", "bench"], env)
    geoship(["scenes", "add", *map(str, paths), "--project", "bench", "--bands", bands], env)
    tokens = {}
    for user in users:
        tokens[user] = geoship(["users", "create", user], env).strip().splitlines()[-1]
        geoship(["projects", "share", "bench", user], env)
    return tokens


def start_api_and_worker(home: Path, env: dict) -> tuple[list[Service], str]:
    """The deployments of prefect.yaml, `geoship serve` and the resident worker `geoship worker`; returns the
    services and the API's base URL."""
    env = {**env, "GEOSHIP_REPO_DIR": str(ROOT)}
    subprocess.run([str(BIN / "prefect"), "work-pool", "create", "geoship", "--type", "process"], env=env, cwd=ROOT,
                   check=True, capture_output=True)
    subprocess.run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    port = free_port()
    api = Service("api", [str(BIN / "geoship"), "serve", "--port", str(port)], env, home, cwd=ROOT)
    worker = Service("worker", [str(BIN / "geoship"), "worker"], env, home, cwd=ROOT)
    api.wait_for_http(f"http://127.0.0.1:{port}/health", 60)
    # As in service: the worker has joined Ray and started its actors before the first order comes in.
    worker.wait_for_line("resident worker: serving", 120)
    return [worker, api], f"http://127.0.0.1:{port}"


def order_by_api(base: str, token: str, request: dict) -> dict:
    """POST the export, then GET it every 0.1 s until it has finished; returns its last view. (Every 20 ms, the
    API's process took CPU from the render on two cores.)"""
    import httpx

    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        response = client.post("/api/v1/exports", json=request)
        response.raise_for_status()
        export_id = response.json()["id"]
        while True:
            view = client.get(f"/api/v1/exports/{export_id}").json()
            if view["status"] in ("success", "error"):
                return view
            time.sleep(0.1)


def render_seconds(home: Path, export_id: int) -> float:
    with sqlite3.connect(home / "geoship" / "geoship.db") as connection:
        (rendered,) = connection.execute("SELECT rendered FROM export WHERE id = ?", (export_id,)).fetchone()
    return json.loads(rendered)["seconds"]


def timeline(home: Path, export_id: int, launched: float) -> list[tuple[float, str]]:
    """The export's log lines as (seconds since the command was launched, the line's first words): where the
    time outside the render goes."""
    with sqlite3.connect(home / "geoship" / "geoship.db") as connection:
        rows = connection.execute("SELECT at, message FROM export_log WHERE export_id = ? ORDER BY id",
                                  (export_id,)).fetchall()
    return [(round(datetime.fromisoformat(at).timestamp() - launched, 2), " ".join(message.split()[:6]))
            for at, message in rows]


def main() -> None:
    parser = job_arguments(__doc__, "end-to-end.json")
    parser.add_argument("--job", choices=["aoi", "mosaic"], default="aoi")
    parser.add_argument("--resampling", default="nearest")
    parser.add_argument("--prefect-database", choices=["sqlite", "postgresql"], default="postgresql",
                        help="the Prefect server's database: postgresql as in production, or Prefect's default")
    parser.add_argument("--via", choices=["cli", "api", "both"], default="cli",
                        help="cli: `geoship export --wait` as a new process; api: a POST to `geoship serve`, run by "
                             "`geoship worker`; both: one of each per repeat, alternating, on the same services")
    args = parser.parse_args()
    ways = ["api", "cli"] if args.via == "both" else [args.via]
    OUT.mkdir(parents=True, exist_ok=True)
    tree, grid, warp_inputs, aoi_path = job(args, scenes(args.size, args.resolution))
    # What geoship reads: the scenes themselves (all their bands, named), or the mosaic job's uint8 copies.
    project_scenes = warp_inputs if args.job == "mosaic" else scenes(args.size, args.resolution)
    bands = "red,green,blue" if args.job == "mosaic" else "red,green,blue,nir"
    times: dict[str, list[float]] = {"gdalwarp": []} | {f"{way}{part}": [] for way in ways
                                                         for part in ("", "_render")}
    timelines = {}
    with tempfile.TemporaryDirectory(prefix="geoship-e2e-") as tmp:
        home = Path(tmp)
        services, env = start_services(home, args.prefect_database)
        try:
            # Each export by another user: an identical export of the same user would reuse the earlier file.
            users = [f"user{i}-{way}" for i in range(args.repeats) for way in ways]
            tokens = register(project_scenes, bands, users, env)
            if "api" in ways:
                started_services, base = start_api_and_worker(home, env)
                services += started_services
            request = {"project": "bench", "srid": 3857, "resolution": grid.resolution, "resampling": args.resampling,
                       "bands": ["red", "green", "blue"]}
            if aoi_path is not None:
                request["aoi"] = json.loads(aoi_path.read_text())["features"][0]["geometry"]
            order = ["export", "--project", "bench", "--srid", "3857", "--resolution", repr(grid.resolution),
                     "--resampling", args.resampling, "--bands", "red,green,blue", "--wait", "--json"]
            if aoi_path is not None:
                order += ["--aoi", str(aoi_path)]
            warp_resampling = {"nearest": "near"}.get(args.resampling, args.resampling)
            for i in range(args.repeats):
                for way in ways:
                    user = f"user{i}-{way}"
                    launched, started = time.time(), time.perf_counter()
                    if way == "api":
                        view = order_by_api(base, tokens[user], request)
                    else:
                        view = json.loads(geoship(order, {**env, "GEOSHIP_USER": user}))
                    times[way].append(time.perf_counter() - started)
                    assert view["status"] == "success", view
                    if (view["width"], view["height"]) != (grid.width, grid.height):
                        print(f"note: geoship's grid is {view['width']} x {view['height']} px, gdalwarp's "
                              f"{grid.width} x {grid.height}", flush=True)
                    times[f"{way}_render"].append(render_seconds(home, view["id"]))
                    timelines[way] = timeline(home, view["id"], launched)
                times["gdalwarp"].append(run_gdalwarp(warp_inputs, grid, aoi_path, OUT / "gdalwarp-e2e.tif",
                                                      resampling=warp_resampling))
                print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
        finally:
            for service in reversed(services):
                service.stop()
    medians = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "job": args.job, "resampling": args.resampling, "via": ways, "prefect_database": args.prefect_database,
        "output": {"width": grid.width, "height": grid.height, "megapixels": round(grid.pixels / 1e6, 1)},
        "cpus": os.cpu_count(), "seconds": {k: [round(t, 2) for t in v] for k, v in times.items()},
        "median_s": {k: round(v, 2) for k, v in medians.items()},
    }
    for way in ways:
        fixed = [total - render for total, render in zip(times[way], times[f"{way}_render"], strict=True)]
        result[way] = {"ratio_to_gdalwarp": round(medians[way] / medians["gdalwarp"], 3),
                       "fixed_cost_s": [round(f, 2) for f in fixed],
                       "median_fixed_cost_s": round(statistics.median(fixed), 2),
                       "last_export_timeline_s": timelines[way]}
    (OUT / args.output).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))

if __name__ == "__main__":
    main()
