"""What a neighbourhood step costs: NDVI over the 20,000 px job against the same NDVI with a focal step.

The job is compare_gdalwarp.py's (four overlapping scenes in two UTM zones, to EPSG:3857 at the native pixel
size, clipped to a 7-vertex polygon). Variants, alternated in each repeat:

  ndvi      NDVI of the project (float32): the reference
  focal2    the focal mean of that NDVI over a 5 x 5 square (radius 2: a 2 px halo, 30 shifted adds per pixel)
  focal8    the focal mean over a circle of radius 8 (an 8 px halo, 68 shifted adds per pixel)
  gdalwarp  the RGB job by gdalwarp, for scale

The halo's own cost is the extra reading and warping of a border of `radius` px around every tile (at 512 px
tiles and radius 8: (528 / 512)^2 - 1 = 6 % more pixels), plus the arithmetic. Run:
  .venv/bin/python bench/halo_cost.py --size 13000 --resolution 1.5 --repeats 1 --output halo-cost-20k.json
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_gdalwarp import AOI, OUT, ROOT, job_arguments, rgb_views, run_gdalwarp, scenes  # noqa: E402
from tree_cost import leaf, ndvi  # noqa: E402

sys.path.insert(0, str(ROOT))
import numpy as np  # noqa: E402
from shapely.geometry import shape  # noqa: E402

from models.tooltree import parse_tool_tree  # noqa: E402
from ray_render.cluster import ensure_ray  # noqa: E402
from ray_render.geometry import reproject_geometry, to_geojson  # noqa: E402
from ray_render.grid import plan_grid  # noqa: E402
from ray_render.render import RenderOptions, render  # noqa: E402


def variants(paths: list[Path], mask: dict) -> dict:
    base = ndvi(leaf(paths, ["red", "nir"]))

    def tree(node: dict):
        return parse_tool_tree({"type": "output", "dtype": "float32", "nodata": -9999, "input": {**mask, "input": node}})

    return {
        "ndvi": tree(base),
        "focal2": tree({"type": "focal", "stat": "mean", "radius": 2, "shape": "square", "input": base}),
        "focal8": tree({"type": "focal", "stat": "mean", "radius": 8, "shape": "circle", "input": base}),
    }


def main() -> None:
    args = job_arguments(__doc__, "halo-cost.json").parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    paths = scenes(args.size, args.resolution)
    aoi = reproject_geometry(shape(AOI), "EPSG:4326", "EPSG:3857")
    grid = plan_grid("EPSG:3857", aoi.bounds, float(args.resolution / np.cos(np.radians(46.0))))
    trees = variants(paths, {"type": "mask", "geometry": to_geojson(aoi), "crs": "EPSG:3857"})
    aoi_path = OUT / "aoi.geojson"
    aoi_path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": AOI}]}))
    rgb_paths = rgb_views(paths)
    ensure_ray(num_cpus=os.cpu_count())
    times: dict[str, list[float]] = {name: [] for name in [*trees, "gdalwarp"]}
    for i in range(args.repeats):
        for name, tree in trees.items():
            started = time.perf_counter()
            render(tree, grid, OUT / f"halo-{name}.tif", RenderOptions(tile_size=args.tile_size, resampling="bilinear"))
            times[name].append(time.perf_counter() - started)
        times["gdalwarp"].append(run_gdalwarp(rgb_paths, grid, aoi_path, OUT / "gdalwarp.tif"))
        print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "output": {"width": grid.width, "height": grid.height, "megapixels": round(grid.pixels / 1e6, 1)},
        "cpus": os.cpu_count(), "tile_size": args.tile_size,
        "seconds": {k: [round(t, 2) for t in v] for k, v in times.items()},
        "median_s": {k: round(v, 2) for k, v in medians.items()},
        "relative_to_ndvi": {k: round(v / medians["ndvi"], 2) for k, v in medians.items()},
    }
    (OUT / args.output).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
