"""Production mode end to end: PostgreSQL for geoship and for a real `prefect server`, deployments from
prefect.yaml (`prefect deploy --all`), a process worker, local Ray, the HTTP API with immediate start, and an
S3 target on moto. Then the faults: the worker killed mid-render (its render slot comes back), the flow run
killed as the OOM killer would, PostgreSQL restarted while exports run and the API is read, and the Prefect
server restarted while exports wait; no export is lost, stuck or started twice."""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from models.migrate import head_revision
from tests.conftest import REPO_ROOT, SMALL_AOI, SMALL_SCENES
from tests.support.net import free_port
from tests.support.postgres import ThrowawayPostgres
from tests.support.processes import Service

BIN = Path(sys.executable).parent


def run(command: list[str], env: dict, **kwargs) -> str:
    import subprocess

    done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def production(tmp_path_factory, s3_server):
    """Everything a production deployment runs, on this machine; yields (env, api base URL, API token)."""
    home = tmp_path_factory.mktemp("production")
    postgres = ThrowawayPostgres(database="geoship")
    geoship_url = postgres.start()
    engine = sqlalchemy.create_engine(geoship_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text('CREATE DATABASE "prefect"'))
    engine.dispose()
    prefect_port, api_port = free_port(), free_port()
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("GEOSHIP_", "PREFECT_"))}
    env = {
        **keep, "GEOSHIP_HOME": str(home / "geoship"), "GEOSHIP_DATABASE_URL": geoship_url,
        "GEOSHIP_REPO_DIR": str(REPO_ROOT), "GEOSHIP_RAY_NUM_CPUS": "2", "GEOSHIP_TILE_SIZE": "64",
        "GEOSHIP_S3_ENDPOINT_HOSTS": '["127.0.0.1"]', "GEOSHIP_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
        "PREFECT_HOME": str(home / "prefect"), "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}/prefect",
        "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",
        # As the README's production setup: leases that outlive a server restart (flows/capacity.py), and a
        # repossessor that takes back an expired lease's slot within seconds rather than 15.
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect.server.concurrency.lease_storage.filesystem",
        "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "2",
    }
    services: list[Service] = []
    try:
        assert f"-> {head_revision()}" in run([str(BIN / "geoship"), "db", "upgrade"], env)
        def start_prefect_server(name: str = "prefect-server") -> Service:
            server = Service(name, [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                                    str(prefect_port)], env, home)
            services.append(server)
            server.wait_for_http(f"http://127.0.0.1:{prefect_port}/api/health", 120)
            return server

        start_prefect_server()
        run([str(BIN / "prefect"), "work-pool", "create", "geoship", "--type", "process"], env)
        run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], env)
        services.append(Service("worker", [str(BIN / "prefect"), "worker", "start", "--pool", "geoship"], env, home,
                                cwd=REPO_ROOT))
        api = Service("api", [str(BIN / "geoship"), "serve", "--port", str(api_port)], env, home)
        services.append(api)
        api.wait_for_http(f"http://127.0.0.1:{api_port}/health", 60)

        from cli.samples import write_scene

        paths = [write_scene(scene, home / "scenes") for scene in SMALL_SCENES]
        token = run([str(BIN / "geoship"), "users", "create", "ops"], env).strip().splitlines()[-1]
        as_ops = {**env, "GEOSHIP_USER": "ops"}
        run([str(BIN / "geoship"), "projects", "create", "alps"], as_ops)
        run([str(BIN / "geoship"), "scenes", "add", *map(str, paths), "--project", "alps"], as_ops)
        state = {"env": env, "api": f"http://127.0.0.1:{api_port}", "prefect": f"http://127.0.0.1:{prefect_port}/api",
                 "token": token, "services": {s.name: s for s in services}, "home": home, "postgres": postgres,
                 "start_prefect_server": start_prefect_server}
        yield state
        services = [*state["services"].values(), *services]
    finally:
        workers = [s for s in services if s.name.startswith("worker")]
        for service in workers + [s for s in services if s not in workers]:  # workers first: they outlive servers
            service.stop()
        postgres.stop()


def wait_for_status(client: httpx.Client, export_id: int, statuses: set[str], seconds: float, logs) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        view = client.get(f"/api/v1/exports/{export_id}").json()
        if view["status"] in statuses:
            return view
        time.sleep(0.5)
    raise AssertionError(f"export {export_id} stayed {view['status']}:\n{logs()}")


def api_client(production) -> httpx.Client:
    return httpx.Client(base_url=production["api"], headers={"Authorization": f"Bearer {production['token']}"},
                        timeout=60)


def render_slots_taken(production) -> int:
    """The slots of the `geoship-renders` global concurrency limit that Prefect counts as taken."""
    return httpx.get(f"{production['prefect']}/v2/concurrency_limits/geoship-renders").json()["active_slots"]


def flow_runs_of(production, export_id: int) -> list[dict]:
    """The export flow runs created for one export (named export-<id>)."""
    body = {"flow_runs": {"name": {"any_": [f"export-{export_id}"]}}}
    return httpx.post(f"{production['prefect']}/flow_runs/filter", json=body).json()


def all_succeed_once(production, client: httpx.Client, export_ids: list[int], logs) -> None:
    """Every export ends in success, each after exactly one flow run, and no render slot stays taken."""
    for export_id in export_ids:
        done = wait_for_status(client, export_id, {"success", "error"}, 300, logs)
        assert done["status"] == "success", f"export {export_id}: {done['error']}\n{logs()}"
        assert done["tiles_done"] == done["tiles_total"]
        assert len(flow_runs_of(production, export_id)) == 1, f"export {export_id} was started more than once"
    assert render_slots_taken(production) == 0


_NUDGES = itertools.count()


def long_export_rendering(client: httpx.Client, worker: Service, tiles_done: int = 0) -> dict:
    """Request an export on a fine grid (seconds of rendering, long enough to break in the middle of) and
    return its view once it renders and has done `tiles_done` tiles. Each call's grid differs a little, so that it
    renders rather than reusing an earlier call's file."""
    view = client.post("/api/v1/exports", json={"project": "alps", "resolution": 15 + next(_NUDGES) / 1000}).json()
    wait_for_status(client, view["id"], {"rendering"}, 120, worker.tail)
    deadline = time.monotonic() + 120
    while client.get(f"/api/v1/exports/{view['id']}").json()["tiles_done"] < tiles_done:
        assert time.monotonic() < deadline, worker.tail()
        time.sleep(0.2)
    return view


def test_an_export_runs_through_prefect_server_a_worker_ray_and_s3(production, s3_server):
    client = api_client(production)
    bucket = s3_server.new_bucket()
    credential = client.post("/api/v1/credentials", json={
        "kind": "s3", "label": "prod", "access_key_id": s3_server.writer.access_key_id,
        "secret_access_key": s3_server.writer.secret_access_key, "endpoint_url": s3_server.url, "bucket": bucket})
    assert credential.status_code == 201, credential.text
    created = client.post("/api/v1/exports", json={
        "project": "alps", "aoi": SMALL_AOI, "resolution": 120, "targets": [
            {"kind": "http"}, {"kind": "s3", "credential_id": credential.json()["id"], "config": {"bucket": bucket}}]})
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["status"] == "submitted" and view["flow_run_id"]  # started at once, not at the next poll

    worker = production["services"]["worker"]
    done = wait_for_status(client, view["id"], {"success", "error"}, 240, worker.tail)
    assert done["status"] == "success", f"{done['error']}\n{worker.tail()}"
    assert done["tiles_done"] == done["tiles_total"] > 1

    run_info = httpx.get(f"{production['prefect']}/flow_runs/{view['flow_run_id']}").json()
    assert run_info["name"] == f"export-{view['id']}" and run_info["parameters"] == {"export_id": view["id"]}
    assert run_info["state"]["type"] == "COMPLETED"
    artifacts = httpx.post(f"{production['prefect']}/artifacts/filter", json={}).json()
    assert {a["key"] for a in artifacts} >= {f"export-{view['id']}-render", f"export-{view['id']}-result"}

    s3_result = done["targets"][1]["result"]
    body = s3_server.client().get_object(Bucket=bucket, Key=s3_result["key"])["Body"].read()
    link = done["targets"][0]["result"]["url"]
    assert httpx.get(link, timeout=60).content == body  # the link serves the same file the bucket holds


def test_a_worker_killed_mid_render_leaves_no_export_stuck(production):
    import signal

    import psutil

    client = api_client(production)
    worker = production["services"]["worker"]
    view = long_export_rendering(client, worker, tiles_done=1)
    # The machine is gone: the worker and everything it started (the flow run and its Ray) die at once.
    family = [worker.process.pid, *(c.pid for c in psutil.Process(worker.process.pid).children(recursive=True))]
    for pid in family:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    worker.process.wait(timeout=10)

    env = {**production["env"], "GEOSHIP_HEARTBEAT_TIMEOUT_SECONDS": "3"}
    time.sleep(4)
    stuck = client.get(f"/api/v1/exports/{view['id']}").json()
    assert stuck["status"] == "rendering"  # nothing ran its hooks: the row still claims it is rendering
    repairs = run([str(BIN / "python"), "-c", "from flows.reconciler import reconcile; print(reconcile())"], env)
    assert "requeued" in repairs and "stopped beating" in repairs
    requeued = client.get(f"/api/v1/exports/{view['id']}").json()
    assert requeued["status"] == "pending" and requeued["flow_run_id"] is None
    run_info = httpx.get(f"{production['prefect']}/flow_runs/{view['flow_run_id']}").json()
    assert run_info["state"]["type"] == "CRASHED"

    # The dead render's slot is still counted until its lease runs out unrenewed; then it comes back.
    assert render_slots_taken(production) == 1
    deadline = time.monotonic() + 120
    while render_slots_taken(production) != 0:
        assert time.monotonic() < deadline, "the killed worker's render slot never came back"
        time.sleep(1)

    # A new worker comes up; the poller (the safety net) starts the export again, and this time it finishes.
    production["services"]["worker"] = Service("worker-2", [str(BIN / "prefect"), "worker", "start", "--pool", "geoship"],
                                               production["env"], production["home"], cwd=REPO_ROOT)
    run([str(BIN / "prefect"), "deployment", "run", "poll-pending-exports/poll-pending-exports"], production["env"])
    done = wait_for_status(client, view["id"], {"success", "error"}, 240, production["services"]["worker"].tail)
    assert done["status"] == "success", done["error"]
    assert done["flow_run_id"] != view["flow_run_id"]


def test_a_postgresql_restart_under_load_leaves_no_export_stuck_and_the_api_answers_503(production):
    client = api_client(production)
    worker = production["services"]["worker"]
    view = long_export_rendering(client, worker)
    queued = [client.post("/api/v1/exports", json={"project": "alps", "resolution": 120}).json()["id"] for _ in range(3)]
    # While geoship's and Prefect's database go away for a moment, a client keeps reading and ordering.
    answers: list[int | str] = []
    stop = threading.Event()

    def keep_asking() -> None:
        with api_client(production) as reader:
            while not stop.is_set():
                for path in (f"/api/v1/exports/{view['id']}", "/api/v1/exports"):
                    try:
                        answers.append(reader.get(path).status_code)
                    except httpx.HTTPError as exc:  # no answer at all is a failure too
                        answers.append(type(exc).__name__)
                time.sleep(0.05)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        time.sleep(1)
        production["postgres"].restart()
        time.sleep(2)
    finally:
        stop.set()
        asker.join(timeout=60)
    api_log = production["services"]["api"].tail(80)
    assert set(answers) <= {200, 503} and 200 in answers, f"{sorted(set(answers), key=str)}\n{api_log}"
    all_succeed_once(production, client, [view["id"], *queued], worker.tail)


def test_exports_waiting_through_a_prefect_server_restart_each_run_once(production):
    client = api_client(production)
    worker = production["services"]["worker"]
    view = long_export_rendering(client, worker)  # holds the only render slot (2 CPUs, one render per 4)
    waiting = [client.post("/api/v1/exports", json={"project": "alps", "resolution": 120}).json() for _ in range(2)]
    assert [w["status"] for w in waiting] == ["pending", "pending"]  # waiting for the render slot
    production["services"]["prefect-server"].stop()
    production["services"]["prefect-server"] = production["start_prefect_server"]("prefect-server-2")
    all_succeed_once(production, client, [view["id"], *(w["id"] for w in waiting)], worker.tail)


def test_a_flow_run_process_killed_like_the_oom_killer_does_is_requeued_and_finished(production):
    import signal

    import psutil

    client = api_client(production)
    worker = production["services"]["worker"]
    view = long_export_rendering(client, worker, tiles_done=1)
    # The kernel's OOM killer picks the biggest process, the flow run's, and SIGKILLs it; the worker lives on.
    flow_runs = [p for p in psutil.Process(worker.process.pid).children()
                 if "prefect.engine" in " ".join(p.cmdline()) or "flow_run" in " ".join(p.cmdline())]
    victim = flow_runs[0] if flow_runs else psutil.Process(worker.process.pid).children()[0]
    victim.send_signal(signal.SIGKILL)

    deadline = time.monotonic() + 60  # the worker sees its child die and reports the run crashed
    while httpx.get(f"{production['prefect']}/flow_runs/{view['flow_run_id']}").json()["state"]["type"] != "CRASHED":
        assert time.monotonic() < deadline, worker.tail()
        time.sleep(0.5)
    # The worker runs the crashed run's hook, which re-queues the export; should that not happen (a worker
    # killed too), the reconciler does the same. Either way the export is pending again, its run written off.
    run([str(BIN / "python"), "-c", "from flows.reconciler import reconcile; print(reconcile())"], production["env"])
    requeued = client.get(f"/api/v1/exports/{view['id']}").json()
    assert requeued["status"] == "pending" and "crashed" in requeued["error"] and "-9" in requeued["error"]
    run([str(BIN / "prefect"), "deployment", "run", "poll-pending-exports/poll-pending-exports"], production["env"])
    done = wait_for_status(client, view["id"], {"success", "error"}, 240, worker.tail)
    assert done["status"] == "success", done["error"]


def test_a_resident_worker_runs_the_apis_exports_in_its_own_process_and_drains_on_sigterm(production):
    """`geoship worker` in place of Prefect's process worker, on the deployments from prefect.yaml."""
    import signal

    client = api_client(production)
    production["services"]["worker"].stop()
    resident = Service("resident-worker", [str(BIN / "geoship"), "worker", "--poll-seconds", "0.2"],
                       production["env"], production["home"], cwd=REPO_ROOT)
    production["services"]["worker"] = resident
    views = [client.post("/api/v1/exports", json={"project": "alps", "resolution": 480 + n / 1000}).json()
             for n in range(2)]
    all_succeed_once(production, client, [view["id"] for view in views], resident.tail)
    expected = []
    for view in views:  # Prefect's engine ran each flow run in the worker's own process
        run_id = client.get(f"/api/v1/exports/{view['id']}").json()["flow_run_id"]
        expected.append(f"flow run 'export-{view['id']}' ({run_id}): Completed")
    # The export's row says success from inside its flow run; the worker logs the run's end just after.
    deadline = time.monotonic() + 30
    while not all(line in (log := resident.log.read_text()) for line in expected) and time.monotonic() < deadline:
        time.sleep(0.2)
    for line in expected:
        assert line in log, log[-4000:]

    rendering = long_export_rendering(client, resident, tiles_done=1)
    resident.process.send_signal(signal.SIGTERM)  # drain: the run in progress finishes, then the worker exits
    assert resident.process.wait(timeout=240) == 0, resident.tail()
    assert client.get(f"/api/v1/exports/{rendering['id']}").json()["status"] == "success"
