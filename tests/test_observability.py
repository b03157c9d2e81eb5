"""observability/: a real Prometheus (Debian's `prometheus`) runs the shipped scrape config against a live geoship
API and Ray's metrics agent, sees the tiles a render made, and runs every query of the shipped Grafana dashboard
on what it scraped."""

from __future__ import annotations

import json
import re
import shutil
import time

import httpx
import numpy as np
import pytest
import ray
import yaml

from api.app import create_app
from models.tooltree import Identity, Output, ProjectSource, parse_tool_tree
from ray_render.grid import plan_grid
from ray_render.render import RenderOptions, render
from tests.conftest import REPO_ROOT
from tests.ray_render.test_mosaic import source_of
from tests.support.live_server import serving
from tests.support.net import free_port
from tests.support.processes import Service

CONFIG = REPO_ROOT / "observability" / "prometheus.yml"
DASHBOARD = REPO_ROOT / "observability" / "grafana-dashboard.json"
GRID = plan_grid("EPSG:32618", (500000, 4000000 - 1024 * 10, 500000 + 1024 * 10, 4000000), 10.0)


@pytest.fixture
def rendered_tiles(ray_cluster, make_raster, tmp_path) -> int:
    """Render a small scene with the session's Ray; returns how many tiles the actors reported."""
    data = np.random.default_rng(2).integers(1, 256, (3, 1024, 1024), dtype=np.uint8)
    scene = make_raster("scene.tif", data, origin=(500000, 4000000), nodata=0, bands=["red", "green", "blue"])
    source = source_of(str(scene), "scene", bands=("red", "green", "blue"))
    tree = parse_tool_tree(Output(input=Identity(input=ProjectSource(scenes=[source], bands=["red", "green", "blue"])),
                                  dtype="uint8", nodata=0).model_dump(mode="json"))
    return render(tree, GRID, tmp_path / "out.tif", RenderOptions(tile_size=256, label="observed")).tiles


def _metrics_agents() -> list[str]:
    """The metrics endpoints of the session's Ray nodes, on loopback."""
    return [f"127.0.0.1:{node['MetricsExportPort']}" for node in ray.nodes() if node["Alive"]]


def _config_for(api: str, ray_targets_file, interval: str = "1s") -> dict:
    """The shipped config, pointed at this test's API and at a discovery file written as Ray's head writes it."""
    config = yaml.safe_load(CONFIG.read_text())
    config["global"]["scrape_interval"] = interval
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs["geoship-api"]["static_configs"] = [{"targets": [api.removeprefix("http://")]}]
    jobs["ray"]["file_sd_configs"] = [{"files": [str(ray_targets_file)]}]
    return config


def _query(prometheus: str, expr: str) -> list[dict]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", f"{expr}: {answer}"
    return answer["data"]["result"]


def _wait_for(prometheus: str, expr: str, wanted, seconds: float, log) -> list[dict]:
    deadline = time.monotonic() + seconds
    while True:
        result = _query(prometheus, expr)
        if wanted(result):
            return result
        assert time.monotonic() < deadline, f"{expr} gave {result}:\n{log()}"
        time.sleep(1)


def test_prometheus_scrapes_geoship_and_ray_and_the_dashboard_queries_what_it_scraped(session, rendered_tiles,
                                                                                     tmp_path):
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus is not installed (.ci/run installs it: apt-get install prometheus)"
    targets = tmp_path / "prom_metrics_service_discovery.json"
    targets.write_text(json.dumps([{"labels": {"job": "ray"}, "targets": _metrics_agents()}]))
    port = free_port()
    prometheus = f"http://127.0.0.1:{port}"
    with serving(create_app()) as api:
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump(_config_for(api, targets)))
        server = Service("prometheus", [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                        f"--web.listen-address=127.0.0.1:{port}"], {}, tmp_path)
        try:
            server.wait_for_http(f"{prometheus}/-/ready", 60)
            up = _wait_for(prometheus, "up == 1", lambda r: {s["metric"]["job"] for s in r} == {"geoship-api", "ray"},
                           60, server.tail)
            assert len(up) == 1 + len(_metrics_agents())
            # Ray's agents report what the actors counted (they flush every few seconds).
            tiles = _wait_for(prometheus, 'sum(ray_geoship_tiles_rendered_total{render="observed"})',
                              lambda r: r and float(r[0]["value"][1]) >= rendered_tiles, 90, server.tail)
            assert float(tiles[0]["value"][1]) == rendered_tiles
            pending = _query(prometheus, 'geoship_exports{status="pending"}')
            assert [float(s["value"][1]) for s in pending] == [0.0]  # the test's database has no export

            # Request series exist once a request was counted: from the API's second scrape on.
            _wait_for(prometheus, 'geoship_http_requests_total{route="/metrics"}', bool, 30, server.tail)
            scraped = set(httpx.get(f"{prometheus}/api/v1/label/__name__/values", timeout=10).json()["data"])
            panels = json.loads(DASHBOARD.read_text())["panels"]
            for target in (t for panel in panels for t in panel["targets"]):
                _query(prometheus, target["expr"])  # Prometheus accepts it
                named = set(re.findall(r"\b(?:ray_)?geoship_\w+", target["expr"]))
                assert named <= scraped, f"{target['expr']} reads series nothing exports: {named - scraped}"
        finally:
            server.stop()
