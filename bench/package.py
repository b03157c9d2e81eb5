"""A sharded export's package, from the first tile to the deliverable in the artifact store: its time, and the
bytes of the actors' answers the driver received.

Renders bench/memory.py's job (four generated scenes, 3 bands uint16, the AOI as a cutline) onto a grid
`--side` px wide, with `--shard-mb` MB shards, through `ray_render.product.render_product` as the export flow
does, into a local artifact directory or (`--store s3`) an S3 bucket on loopback (moto's server, in a process
of its own). If the renderer hands back a local file for an S3 store, it is uploaded from here as the flow
publishes it (`delivery.s3.upload_file`), and that time is counted. Run from another checkout's root (with
PYTHONPATH set to it, so that Ray's workers import it too) to compare versions side by side:

    .venv/bin/python bench/package.py --store s3
    PYTHONPATH=/tmp/old .venv/bin/python /tmp/old/bench/package.py --store s3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from compare_gdalwarp import OUT  # noqa: E402
from memory import job  # noqa: E402

from ray_render.cluster import ensure_ray  # noqa: E402
from ray_render.grid import plan_grid  # noqa: E402
from ray_render.product import render_product  # noqa: E402
from ray_render.render import RenderOptions  # noqa: E402
from ray_render.shards import plan_shards  # noqa: E402
from ray_render.upload import S3Output  # noqa: E402


def start_s3() -> tuple[subprocess.Popen, str]:
    """moto's S3 server on a free loopback port, in a process of its own."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
    return server, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=10000, help="output width in pixels")
    parser.add_argument("--shard-mb", type=int, default=200, help="largest shard, uncompressed (MB)")
    parser.add_argument("--store", choices=("local", "s3", "seaweedfs"), default="local",
                        help="s3: moto's server; seaweedfs: `weed mini` (disk-backed, in Go)")
    parser.add_argument("--size", type=int, default=13000, help="pixels per side of each generated scene")
    parser.add_argument("--resolution", type=float, default=1.5, help="scene pixel size (m)")
    parser.add_argument("--tile-size", type=int, default=RenderOptions.tile_size, help="pixels per tile side")
    args = parser.parse_args()

    tree, aoi = job(args.size, args.resolution)
    left, _, right, _ = aoi.bounds
    grid = plan_grid("EPSG:3857", aoi.bounds, (right - left) / args.side)
    windows = plan_shards(grid, tree.root, args.tile_size, args.shard_mb * 10**6)
    directory = OUT / "package"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    server, upload, weed = None, None, None
    if args.store == "s3":
        import boto3

        server, endpoint = start_s3()
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="artifacts")
    elif args.store == "seaweedfs":
        from tests.support.seaweedfs import ACCESS_KEY, ENDPOINT, SECRET_KEY, run_seaweedfs

        (directory / "weed").mkdir()
        weed = run_seaweedfs(directory / "weed")
        next(weed).create_bucket(Bucket="artifacts")
        os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_REGION="us-east-1")
        endpoint = ENDPOINT
    if args.store != "local":
        upload = S3Output("artifacts", "exports/export-1.zip", endpoint, 16 * 1024**2)
    ensure_ray(num_cpus=os.cpu_count())
    try:
        started = time.perf_counter()
        rendered = render_product(tree, grid, directory / "export-1.tif", RenderOptions(tile_size=args.tile_size),
                                  shard_windows=windows, upload=upload, created=datetime.now(UTC))
        render_seconds = time.perf_counter() - started
        publish_seconds = 0.0
        if upload is not None and rendered.uri != upload.uri:  # a local file: the flow publishes it from here
            from delivery.s3 import s3_client, upload_file

            started = time.perf_counter()
            upload_file(s3_client(endpoint_url=upload.endpoint_url, attempts=3), Path(rendered.uri), upload.bucket,
                        upload.key, sha256=rendered.sha256, threshold=64 * 1024**2, part_size=16 * 1024**2)
            publish_seconds = time.perf_counter() - started
    finally:
        if server is not None:
            server.terminate()
        if weed is not None:
            next(weed, None)  # stops it
        shutil.rmtree(directory, ignore_errors=True)
    print(json.dumps({
        "side": args.side, "store": args.store, "shards": len(rendered.shards), "package_mb": round(rendered.bytes / 1e6, 1),
        "render_product_s": round(render_seconds, 2), "publish_s": round(publish_seconds, 2),
        "total_s": round(render_seconds + publish_seconds, 2), "written_by_actors": upload is not None and
        rendered.uri == upload.uri, "driver_bytes": rendered.driver_bytes}))


if __name__ == "__main__":
    main()
