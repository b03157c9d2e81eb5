"""The renderer on a Ray cluster of two nodes (`ray.cluster_utils.Cluster` on this machine): tile actors
spread over both nodes and the output is pixel for pixel the one-node output. Runs in a child process,
because a process joins one Ray cluster at a time and the session's is already up."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import rasterio

from ray_render.grid import plan_grid
from ray_render.render import RenderOptions, render
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


def test_two_nodes_render_the_same_pixels_as_one(ray_cluster, scene, tmp_path):
    grid = plan_grid("EPSG:32618", (500000, 4000000, 503000, 4003000), 10)
    tree = tree_of(scene)
    render(tree, grid, tmp_path / "one-node.tif", RenderOptions(tile_size=100))
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(tree.to_json()), json.dumps(grid.to_dict()),
                           str(tmp_path / "two-nodes.tif")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"nodes": 2, "actor_nodes": 2}  # one tile actor on each node
    with rasterio.open(tmp_path / "one-node.tif") as one, rasterio.open(tmp_path / "two-nodes.tif") as two:
        assert np.array_equal(one.read(), two.read())
