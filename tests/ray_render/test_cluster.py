"""The renderer on a Ray cluster of two nodes (`ray.cluster_utils.Cluster` on this machine): tile actors
spread over both nodes and the output is pixel for pixel the one-node output. Runs in a child process,
because a process joins one Ray cluster at a time and the session's is already up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from datetime import UTC, datetime

import numpy as np
import rasterio

from ray_render.grid import plan_grid
from ray_render.product import render_product
from ray_render.render import RenderOptions, render
from ray_render.shards import shard_windows
from tests.ray_render.test_render import tree_of

SCRIPT = textwrap.dedent("""
    import json, sys
    import ray
    from ray.cluster_utils import Cluster
    from models.tooltree import parse_tool_tree
    from ray_render.grid import OutputGrid
    from ray_render.render import RenderOptions, render

    tree, grid, out = json.loads(sys.argv[1]), OutputGrid.from_dict(json.loads(sys.argv[2])), sys.argv[3]
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    nodes = set()

    def spy(done, total):
        if done == total:
            for name in ray.util.list_named_actors():
                if str(name).startswith("tile-cluster-"):
                    nodes.add(ray.get(ray.get_actor(name).stats.remote())["node_id"])

    render(parse_tool_tree(tree), grid, out, RenderOptions(tile_size=100, pool_size=2, label="cluster"), on_progress=spy)
    print(json.dumps({"nodes": len(ray.nodes()), "actor_nodes": len(nodes)}))
    ray.shutdown()
    cluster.shutdown()
""")


def run_on_two_nodes(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run `script` in a child process with a Ray temp directory of its own: `Cluster` writes its address to
    `<temp>/ray/ray_current_cluster`, which every `ray.init()` on the machine would otherwise find (and, if the child
    dies before its shutdown, find dead). A short path under /tmp, since Ray's sockets live there."""
    with tempfile.TemporaryDirectory(prefix="ray-", dir="/tmp") as temp:
        return subprocess.run([sys.executable, "-c", script, *args], env={**os.environ, "RAY_TMPDIR": temp},
                              capture_output=True, text=True, timeout=300)


def test_two_nodes_render_the_same_pixels_as_one(ray_cluster, scene, tmp_path):
    grid = plan_grid("EPSG:32618", (500000, 4000000, 503000, 4003000), 10)
    tree = tree_of(scene)
    render(tree, grid, tmp_path / "one-node.tif", RenderOptions(tile_size=100))
    done = run_on_two_nodes(SCRIPT, json.dumps(tree.to_json()), json.dumps(grid.to_dict()), str(tmp_path / "two-nodes.tif"))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"nodes": 2, "actor_nodes": 2}  # one tile actor on each node
    with rasterio.open(tmp_path / "one-node.tif") as one, rasterio.open(tmp_path / "two-nodes.tif") as two:
        assert np.array_equal(one.read(), two.read())


UPLOAD_SCRIPT = textwrap.dedent("""
    import json, sys
    from dataclasses import asdict
    import ray
    from ray.cluster_utils import Cluster
    from models.tooltree import parse_tool_tree
    from ray_render.grid import OutputGrid
    from ray_render.render import RenderOptions, render
    from ray_render.upload import S3Output
    from dataclasses import replace
    from datetime import UTC, datetime
    from pathlib import Path
    from ray_render.product import render_product
    from ray_render.shards import shard_windows

    tree, grid = json.loads(sys.argv[1]), OutputGrid.from_dict(json.loads(sys.argv[2]))
    output = S3Output(**json.loads(sys.argv[3]))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    options = RenderOptions(tile_size=256, pool_size=2, label="s3")
    result = render(parse_tool_tree(tree), grid, sys.argv[4], options, upload=output)
    print(json.dumps(asdict(result)))
    # The same render as a package of 768 px shards, written by the actors of both nodes into one ZIP.
    package = replace(output, key=output.key.replace(".tif", ".zip"))
    packaged = render_product(parse_tool_tree(tree), grid, Path(sys.argv[4]), options, upload=package,
                              shard_windows=shard_windows(grid, 768), created=datetime(2026, 12, 5, tzinfo=UTC))
    print(json.dumps(packaged.model_dump(mode="json", exclude={"quicklook"})))
    ray.shutdown()
    cluster.shutdown()
""")


def test_two_nodes_upload_an_s3_scene_render_into_s3_without_pixels_through_the_driver(ray_cluster, s3_server,
                                                                                       make_raster, tmp_path,
                                                                                       monkeypatch):
    from tests.ray_render.test_upload import GRID, noise_scene, rgb_of

    for key, value in {"AWS_ACCESS_KEY_ID": s3_server.writer.access_key_id, "AWS_REGION": "us-east-1",
                       "AWS_SECRET_ACCESS_KEY": s3_server.writer.secret_access_key,
                       "AWS_ENDPOINT_URL": s3_server.url}.items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.new_bucket()
    s3_server.client().upload_file(str(noise_scene(make_raster)), bucket, "scenes/noise.tif")
    tree = rgb_of(f"s3://{bucket}/scenes/noise.tif")
    one = render(tree, GRID, tmp_path / "one-node.tif", RenderOptions(tile_size=256))
    output = {"bucket": bucket, "key": "renders/export-1.tif", "endpoint_url": s3_server.url, "part_size": 5 * 1024**2}
    done = run_on_two_nodes(UPLOAD_SCRIPT, json.dumps(tree.to_json()), json.dumps(GRID.to_dict()), json.dumps(output),
                            str(tmp_path / "staged" / "export-1.tif"))
    assert done.returncode == 0, done.stderr[-3000:]
    two, packaged = (json.loads(line) for line in done.stdout.strip().splitlines()[-2:])
    stored = s3_server.client().get_object(Bucket=bucket, Key="renders/export-1.tif")["Body"].read()
    assert stored == (tmp_path / "one-node.tif").read_bytes() and two["sha256"] == one.sha256  # byte for byte
    assert len(two["tiles_by_node"]) == 2 and sum(two["tiles_by_node"].values()) == 49  # actors on both nodes
    # What the driver received: block positions, references and part ETags, about 0.2 % of the file here.
    assert 0 < two["driver_bytes"] < min(64 * 1024, one.bytes // 100)
    assert not (tmp_path / "staged" / "export-1.tif").exists()
    # The package: the same bytes as one node's, its shards' tiles made on both nodes, no pixel through the driver.
    one_package = render_product(tree, GRID, tmp_path / "one" / "export-1.tif", RenderOptions(tile_size=256),
                                 shard_windows=shard_windows(GRID, 768), created=datetime(2026, 12, 5, tzinfo=UTC))
    stored = s3_server.client().get_object(Bucket=bucket, Key="renders/export-1.zip")["Body"].read()
    assert stored == (tmp_path / "one" / "export-1.zip").read_bytes() and packaged["sha256"] == one_package.sha256
    assert len(packaged["tiles_by_node"]) == 2 and len(packaged["shards"]) == 9
    assert 0 < packaged["driver_bytes"] < min(64 * 1024, one_package.bytes // 100)



def test_a_local_start_ignores_the_address_a_dead_cluster_left_behind():
    """`ray.init()` with no address joins the cluster named in `<temp>/ray/ray_current_cluster`, even a dead one,
    and then refuses `num_cpus`: the embedded default must start its own instance whatever that file says."""
    script = ("import ray; from ray_render.cluster import ensure_ray, cluster_cpus; ensure_ray(num_cpus=1); "
              "print(cluster_cpus()); ray.shutdown()")
    with tempfile.TemporaryDirectory(prefix="ray-", dir="/tmp") as temp:
        os.mkdir(os.path.join(temp, "ray"))
        with open(os.path.join(temp, "ray", "ray_current_cluster"), "w") as stale:
            stale.write("192.0.2.2:46255")  # what a killed `Cluster` left on this machine
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        done = subprocess.run([sys.executable, "-c", script], env={**env, "RAY_TMPDIR": temp},
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "1"


def test_errors_the_cluster_reports_go_to_stderr_never_to_a_command_s_stdout(ray_cluster, capsys):
    """A worker killed under a task: Ray tells the driver, which prints it; stdout is a command's answer (--json)."""
    import signal
    import time

    import ray

    @ray.remote(max_restarts=0)
    class Sleeper:
        def pid(self):
            return os.getpid()

        def sleep(self):
            time.sleep(60)

    sleeper = Sleeper.remote()
    pid = ray.get(sleeper.pid.remote())
    sleeping = sleeper.sleep.remote()
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    try:
        ray.get(sleeping, timeout=30)
    except ray.exceptions.RayError:
        pass
    out, err = "", ""
    deadline = time.monotonic() + 20
    while "died" not in err and time.monotonic() < deadline:
        time.sleep(0.2)
        captured = capsys.readouterr()
        out, err = out + captured.out, err + captured.err
    assert "died" in err and "(raylet)" not in out
