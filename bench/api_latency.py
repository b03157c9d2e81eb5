"""Request-to-`submitted` latency of the HTTP API with immediate start, against a real Prefect server.

Starts, in a temporary GEOSHIP_HOME: `prefect server start` (SQLite), the export deployment on a process work
pool (no worker is needed to reach `submitted`), and `geoship serve`; then POSTs exports one after another and
measures how long each takes until the export row is `submitted` with its flow run (the response carries
that status, and the row is read back to confirm). The design this replaces polled every minute: 60-120 s.
Run:  .venv/bin/python bench/api_latency.py [--requests 30]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent


def wait_for(url: str, seconds: float) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="geoship-bench-api-"))
    prefect_port, api_port = free_port(), free_port()
    env = {**os.environ, "GEOSHIP_HOME": str(home), "PREFECT_HOME": str(home / "prefect"),
           "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1", "GEOSHIP_START_ON_REQUEST": "true", "PREFECT_LOGGING_LEVEL": "WARNING"}
    os.environ.update(env)
    processes = []
    try:
        started = time.monotonic()
        processes.append(subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                                           str(prefect_port)], env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))
        wait_for(f"http://127.0.0.1:{prefect_port}/api/health", 120)
        prefect_seconds = time.monotonic() - started

        subprocess.run([str(BIN / "prefect"), "work-pool", "create", "geoship-bench", "--type", "process"], env=env,
                       check=True, capture_output=True)
        from flows.export_flow import export_flow

        export_flow.to_deployment(name="export", work_pool_name="geoship-bench").apply()

        from cli.samples import write_scene
        from tests.conftest import SMALL_SCENES

        paths = [write_scene(scene, home / "scenes") for scene in SMALL_SCENES]
        geoship = str(BIN / "geoship")
        token = subprocess.run([geoship, "users", "create", "bench"], env=env, check=True, capture_output=True,
                               text=True).stdout.strip().splitlines()[-1]
        as_bench = {**env, "GEOSHIP_USER": "bench"}
        subprocess.run([geoship, "projects", "create", "alps"], env=as_bench, check=True, capture_output=True)
        subprocess.run([geoship, "scenes", "add", *map(str, paths), "--project", "alps"], env=as_bench, check=True,
                       capture_output=True)
        processes.append(subprocess.Popen([geoship, "serve", "--port", str(api_port)], env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))
        wait_for(f"http://127.0.0.1:{api_port}/health", 60)

        import httpx

        client = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {token}"},
                              timeout=60)
        latencies = []
        for _ in range(args.requests):
            begin = time.perf_counter()
            response = client.post("/api/v1/exports", json={"project": "alps", "resolution": 480})
            if response.status_code != 201:
                raise RuntimeError(f"POST /api/v1/exports answered {response.status_code}: {response.text}")
            view = response.json()
            while view["status"] == "pending":  # immediate start failed: the poller would have to pick it up
                view = client.get(f"/api/v1/exports/{view['id']}").json()
            latencies.append(time.perf_counter() - begin)
            assert view["status"] == "submitted" and view["flow_run_id"], view
        latencies.sort()
        result = {
            "requests": len(latencies), "median_s": statistics.median(latencies),
            "p95_s": latencies[max(0, int(0.95 * len(latencies)) - 1)], "max_s": latencies[-1],
            "min_s": latencies[0], "prefect_server_start_s": prefect_seconds,
        }
        print(json.dumps(result, indent=2))
        out = ROOT / "bench" / "out"
        out.mkdir(parents=True, exist_ok=True)
        (out / "api_latency.json").write_text(json.dumps(result, indent=2))
    finally:
        for process in reversed(processes):
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
