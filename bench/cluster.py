"""Two Ray nodes against one, scenes and output in S3: tiles per second per node, and the bytes the driver gets.

The job is compare_gdalwarp.py's (`--job mosaic` by default: the plain mosaic of four overlapping uint8 scenes in
two UTM zones). Its scenes are uploaded to a SeaweedFS S3 server on loopback (a separate process, as a platform's
store would be) and every tile actor reads them through GDAL's /vsis3/ with the platform's AWS environment. Each
render goes straight into an S3 object (the actors upload its parts; the driver sends the header and completes the
upload). Alternating, in child processes (a process joins one Ray cluster at a time):
  local: a one-node Ray with 2 CPUs, 2 tile actors, reading the scenes from local files (the reference);
  one: the same, reading the scenes from S3;
  two: `ray.cluster_utils.Cluster` with two nodes of 1 CPU each on this machine, 1 tile actor per node, scenes
       from S3.
Both have the same two cores, so the second shows what spreading over nodes costs (object transfers between
nodes, spill files read by another node's uploads), not what a second machine adds. Reports per run the wall
time, tiles per node and per node-second, the bytes the driver received, and whether the objects are identical.

Run:  .venv/bin/python bench/cluster.py --size 6000 --resolution 10 --repeats 2
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from compare_gdalwarp import OUT, job, job_arguments, scenes  # noqa: E402

from models.tooltree import parse_tool_tree  # noqa: E402
from tests.support.seaweedfs import ACCESS_KEY, ENDPOINT, SECRET_KEY, run_seaweedfs  # noqa: E402

# Runs one render per call in its own Ray (one node of 2 CPUs, or two nodes of 1), prints its RenderResult.
CHILD = textwrap.dedent("""
    import json, sys, time
    from dataclasses import asdict
    import ray
    from models.tooltree import parse_tool_tree
    from ray_render.grid import OutputGrid
    from ray_render.render import RenderOptions, render
    from ray_render.upload import S3Output

    layout, tree, grid = sys.argv[1], parse_tool_tree(json.loads(sys.argv[2])), OutputGrid.from_dict(json.loads(sys.argv[3]))
    output, staged, tile_size = S3Output(**json.loads(sys.argv[4])), sys.argv[5], int(sys.argv[6])
    started = time.perf_counter()
    if layout == "two":  # else one node of 2 CPUs ("one", or "local" reading local files)
        from ray.cluster_utils import Cluster
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address)
        cluster.wait_for_nodes()
    else:
        ray.init(num_cpus=2, include_dashboard=False)
    ray_start = time.perf_counter() - started
    result = render(tree, grid, staged, RenderOptions(tile_size=tile_size, label=layout), upload=output)
    print(json.dumps({**asdict(result), "ray_start_s": ray_start}))
    ray.shutdown()
    if layout == "two":
        cluster.shutdown()
""")


def run_child(layout: str, tree, grid, output: dict, tile_size: int, env: dict[str, str]) -> dict:
    """One render in a child process with a Ray temp directory of its own (see tests/ray_render/test_cluster.py)."""
    with tempfile.TemporaryDirectory(prefix="ray-", dir="/tmp") as temp:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, layout, json.dumps(tree.to_json()), json.dumps(grid.to_dict()),
             json.dumps(output), str(Path(temp) / "staged.tif"), str(tile_size)],
            env={**env, "RAY_TMPDIR": temp}, capture_output=True, text=True, timeout=3600, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"the {layout}-node render failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def server_cpu_seconds() -> float:
    """CPU seconds used so far by the S3 server (`weed`, with its children): it shares this machine's cores."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            if fields[0].endswith("(weed"):
                utime, stime = fields[1].split()[11:13]
                total += (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError):
            continue  # a process that ended while we looked
    return total


def in_s3(tree, paths: list[Path], bucket: str):
    """The same tree reading each scene from s3://bucket/scenes/<name> instead of its local path."""
    text = json.dumps(tree.to_json())
    for path in paths:
        text = text.replace(json.dumps(str(path))[1:-1], f"s3://{bucket}/scenes/{path.name}")
    return parse_tool_tree(json.loads(text))


def main() -> None:
    parser = job_arguments(__doc__, "cluster.json")
    parser.add_argument("--job", choices=["aoi", "mosaic"], default="mosaic")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    local_tree, grid, _, _ = job(args, scenes(args.size, args.resolution))
    used = sorted({Path(band.uri) for leaf in local_tree.sources() for scene in leaf.scenes for band in scene.bands})
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
           "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": ENDPOINT, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="seaweed-") as store:
        server = run_seaweedfs(Path(store))
        client = next(server)
        try:
            client.create_bucket(Bucket="platform")
            for path in used:
                client.upload_file(str(path), "platform", f"scenes/{path.name}")
            tree = in_s3(local_tree, used, "platform")
            runs: dict[str, list[dict]] = {"local": [], "one": [], "two": []}
            for i in range(args.repeats):
                for layout in runs:
                    key = f"renders/{layout}-{i}.tif"
                    output = {"bucket": "platform", "key": key, "endpoint_url": ENDPOINT}
                    before = server_cpu_seconds()
                    result = run_child(layout, local_tree if layout == "local" else tree, grid, output,
                                       args.tile_size, env)
                    result["s3_server_cpu_s"] = server_cpu_seconds() - before
                    runs[layout].append(result)
                    print(f"run {i + 1} {layout}: {result['seconds']:.2f} s, tiles by node {result['tiles_by_node']}, "
                          f"driver received {result['driver_bytes']:,} B, S3 server {result['s3_server_cpu_s']:.1f} CPU-s",
                          flush=True)
            objects = {client.head_object(Bucket="platform", Key=f"renders/{layout}-{i}.tif")["ETag"]
                       for layout in runs for i in range(args.repeats)}
            digests = {r["sha256"] for results in runs.values() for r in results}
        finally:
            server.close()
    report = {"job": args.job, "output": {"width": grid.width, "height": grid.height, "megapixels": round(grid.pixels / 1e6, 1)},
              "tile_size": args.tile_size, "scene_bytes": sum(p.stat().st_size for p in used),
              "identical_outputs": len(digests) == 1, "distinct_object_etags": len(objects)}
    for layout, results in runs.items():
        per_node_rates = [count / r["seconds"] for r in results for count in r["tiles_by_node"].values()]
        report[layout] = {
            "seconds": [round(r["seconds"], 2) for r in results],
            "median_s": round(statistics.median(r["seconds"] for r in results), 2),
            "tiles": results[0]["tiles"], "bytes": results[0]["bytes"],
            "tiles_by_node": [sorted(r["tiles_by_node"].values(), reverse=True) for r in results],
            "tiles_per_node_second": [round(rate, 2) for rate in per_node_rates],
            "driver_bytes": [r["driver_bytes"] for r in results],
            "driver_bytes_per_tile": round(statistics.median(r["driver_bytes"] / r["tiles"] for r in results), 1),
            "ray_start_s": [round(r["ray_start_s"], 2) for r in results],
            # Per run, including Ray's start and stop in the child: the S3 server's share of the two cores.
            "s3_server_cpu_s": [round(r["s3_server_cpu_s"], 2) for r in results],
        }
    (OUT / args.output).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
