"""Peak memory of a render against its output size: bounded by tile and pool size, never by the output.

Renders the same four generated scenes (bench/compare_gdalwarp.py's, 13,000 px at 1.5 m by default) onto
ever finer grids of the same area, up to at least 40,000 x 40,000 px, 3 bands uint16, with the settings a
service uses (sharding included: outputs over GEOSHIP_SHARD_MAX_BYTES become shards). While each render
runs, a sampler sums the memory of the whole process tree every 0.5 s: the driver and every Ray process it
started (raylet, GCS, tile-actor workers). Each size renders in a fresh driver process with its own local
Ray, as each flow run of the service runs in a process of its own. PSS counts shared pages (Ray's object store, libraries) once
across processes; RSS counts them in each. Run:  .venv/bin/python bench/memory.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import psutil  # noqa: E402
from compare_gdalwarp import AOI, OUT, scenes  # noqa: E402
from rasterio.windows import Window  # noqa: E402
from shapely.geometry import shape  # noqa: E402

from models.catalogue import scene_source  # noqa: E402
from models.settings import get_settings  # noqa: E402
from models.tables import Scene  # noqa: E402
from models.tooltree import Identity, Mask, Output, ProjectSource, parse_tool_tree  # noqa: E402
from ray_render.cluster import ensure_ray  # noqa: E402
from ray_render.geometry import reproject_geometry, to_geojson  # noqa: E402
from ray_render.grid import plan_grid  # noqa: E402
from ray_render.inspect import inspect_scene  # noqa: E402
from ray_render.render import RenderOptions, Shard, render_shards  # noqa: E402
from ray_render.shards import plan_shards  # noqa: E402


class TreeSampler(threading.Thread):
    """Samples the summed PSS and RSS of this process and every Ray process until stopped; keeps the peaks."""

    def __init__(self, root: psutil.Process, interval: float = 0.5):
        super().__init__(daemon=True)
        self.root = root
        self.interval, self.peak_pss, self.peak_rss, self.peak_processes = interval, 0, 0, 0
        self.peak_by_role: dict[str, int] = {}  # PSS of the largest process of each role
        self._stopping = threading.Event()

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]  # the driver started Ray: all its children
        except psutil.NoSuchProcess:
            return []

    def _role(self, process: psutil.Process) -> str:
        if process.pid == self.root.pid:
            return "driver"
        line = " ".join(process.cmdline())
        for role in ("TileActor", "raylet", "gcs_server", "dashboard", "log_monitor", "monitor.py"):
            if role in line:
                return role
        return "ray::IDLE worker" if "ray::" in line else "other"

    def run(self) -> None:
        while not self._stopping.is_set():
            pss = rss = 0
            processes = self._tree()
            for process in processes:
                try:
                    info = process.memory_full_info()
                    pss, rss = pss + info.pss, rss + info.rss
                    role = self._role(process)
                    self.peak_by_role[role] = max(self.peak_by_role.get(role, 0), info.pss)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            self.peak_processes = max(self.peak_processes, len(processes))
            self._stopping.wait(self.interval)

    def stop(self) -> None:
        self._stopping.set()
        self.join()


def job(size: int, resolution: float):
    """The job's tool tree (the generated scenes, 3 bands uint16, the AOI as a cutline) and its AOI in EPSG:3857."""
    paths = scenes(size, resolution)
    sources = [scene_source(Scene(name=p.stem, owner_id=0, **asdict(inspect_scene(path=str(p))))) for p in paths]
    aoi = reproject_geometry(shape(AOI), "EPSG:4326", "EPSG:3857")
    node = Mask(input=Identity(input=ProjectSource(scenes=sources, bands=["red", "green", "blue"])),
                geometry=to_geojson(aoi), crs="EPSG:3857")
    return parse_tool_tree(Output(input=node, dtype="uint16", nodata=0).model_dump(mode="json")), aoi


def render_one(args, side: int) -> dict:
    """Render the job onto a grid `side` px wide in this process, as a flow run does; returns what was written."""
    tree, aoi = job(args.size, args.resolution)
    ensure_ray(num_cpus=os.cpu_count())
    settings = get_settings()
    options = RenderOptions(tile_size=args.tile_size, gdal_cache_mb=settings.gdal_cache_mb)
    left, bottom, right, top = aoi.bounds
    grid = plan_grid("EPSG:3857", aoi.bounds, (right - left) / side)
    directory = OUT / f"memory-{side}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    windows = plan_shards(grid, tree.root, args.tile_size, settings.shard_max_bytes) or [
        ("all", Window(0, 0, grid.width, grid.height))]
    shards = [Shard(name, window, directory / f"{name}.tif") for name, window in windows]
    started = time.perf_counter()
    results = render_shards(tree, grid, shards, options)
    seconds = time.perf_counter() - started
    shutil.rmtree(directory, ignore_errors=True)
    return {
        "width": grid.width, "height": grid.height, "megapixels": round(grid.pixels / 1e6, 1), "bands": 3,
        "uncompressed_gb": round(grid.pixels * 3 * 2 / 1e9, 2), "shards": len(results),
        "cog_gb": round(sum(r.bytes for r in results) / 1e9, 2), "render_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=13000, help="pixels per side of each generated scene")
    parser.add_argument("--resolution", type=float, default=1.5, help="scene pixel size (m)")
    parser.add_argument("--sides", default="10000,20000,40000", help="output widths to render, in pixels")
    parser.add_argument("--tile-size", type=int, default=RenderOptions.tile_size, help="pixels per tile side")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: render one size in this process
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(render_one(args, args.one)), flush=True)
        return

    scenes(args.size, args.resolution)  # generated once, outside any measurement
    runs = []
    for side in [int(s) for s in args.sides.split(",")]:
        # Each size renders in a fresh driver process with its own local Ray, as each flow run of the
        # service does (a process worker runs every flow run in a new process).
        command = [sys.executable, __file__, "--one", str(side), "--size", str(args.size),
                   "--resolution", str(args.resolution), "--tile-size", str(args.tile_size)]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        sampler = TreeSampler(psutil.Process(child.pid))
        sampler.start()
        output, _ = child.communicate()
        sampler.stop()
        if child.returncode != 0:
            sys.exit(f"rendering {side} px failed")
        run = json.loads(output.split("RESULT ", 1)[1])
        run.update(peak_pss_mb=round(sampler.peak_pss / 2**20), peak_rss_mb=round(sampler.peak_rss / 2**20),
                   processes=sampler.peak_processes,
                   peak_pss_mb_by_role={k: round(v / 2**20) for k, v in sorted(sampler.peak_by_role.items())})
        runs.append(run)
        print(json.dumps(run), flush=True)
    settings = get_settings()
    result = {"tile_size": args.tile_size, "pool_size": os.cpu_count(), "gdal_cache_mb": settings.gdal_cache_mb,
              "shard_max_bytes": settings.shard_max_bytes, "tiles_in_flight_per_actor": RenderOptions().in_flight_per_actor,
              "runs": runs, "pss_growth_smallest_to_largest": round(runs[-1]["peak_pss_mb"] / runs[0]["peak_pss_mb"], 2)}
    (OUT / "memory.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
