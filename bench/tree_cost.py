"""What each extra source of a tool tree costs: plain RGB of one project against trees of 1, 2 and 4 leaves.

The job is compare_gdalwarp.py's (four overlapping scenes in two UTM zones, to EPSG:3857 at the native pixel
size, clipped to a 7-vertex polygon); a second project of four scenes of the same places on another "date"
(other haze, other swath tilt: other files, other pixels) is generated beside it. Variants, alternated:

  rgb      1 leaf:  the project's red, green, blue (uint16), the reference
  ndvi     1 leaf:  NDVI of the project (float32)
  change   2 leaves: NDVI of the second date minus NDVI of the first (float32)
  change4  4 leaves: that change with each date's hazy pixels removed by its own blue band (read with nearest),
           classified (loss / stable / gain) and coloured (RGBA uint8): what a user orders
  gdalwarp the rgb job by gdalwarp, for scale

Each geoship run is ray_render.render() on a warm local Ray, as a service runs it. Run:
  .venv/bin/python bench/tree_cost.py --size 13000 --resolution 1.5 --repeats 2
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_gdalwarp import AOI, OUT, ROOT, job_arguments, rgb_views, run_gdalwarp, scenes  # noqa: E402

sys.path.insert(0, str(ROOT))
import numpy as np  # noqa: E402
from shapely.geometry import shape  # noqa: E402

from models.catalogue import scene_source  # noqa: E402
from models.tables import Scene  # noqa: E402
from models.tooltree import parse_tool_tree  # noqa: E402
from ray_render.cluster import ensure_ray  # noqa: E402
from ray_render.geometry import reproject_geometry, to_geojson  # noqa: E402
from ray_render.grid import plan_grid  # noqa: E402
from ray_render.inspect import inspect_scene  # noqa: E402
from ray_render.render import RenderOptions, render  # noqa: E402

# Blue above this (DN) counts as haze in change4's masks.
HAZE_BLUE = 1200


def later_scenes(size_px: int, resolution: float) -> list[Path]:
    """The same four places on a second date: other haze and swath tilt, so other pixels and other files."""
    return scenes(size_px, resolution, label="scenes-later", haze=(40, 60, 110, -30), swath_tilt_deg=12.0,
                  acquired="2025-07-01T10:15:00Z")


def leaf(paths: list[Path], bands: list[str], resampling: str = "bilinear") -> dict:
    sources = [scene_source(Scene(name=p.stem, owner_id=0, **asdict(inspect_scene(path=str(p))))).model_dump(mode="json")
               for p in paths]
    return {"type": "project", "scenes": sources, "bands": bands, "resampling": resampling}


def ndvi(source: dict) -> dict:
    return {"type": "normalized_difference", "a": "nir", "b": "red", "name": "ndvi", "input": source}


def clear(node: dict, paths: list[Path]) -> dict:
    return {"type": "mask_by", "input": node, "by": leaf(paths, ["blue"], "nearest"),
            "keep_where": {"range": [1, HAZE_BLUE]}}


def change(before: dict, after: dict) -> dict:
    return {"type": "band_math", "name": "dndvi", "inputs": {"before": before, "after": after},
            "expr": {"op": "-", "args": [{"band": "ndvi", "input": "after"}, {"band": "ndvi", "input": "before"}]}}


def trees(first: list[Path], second: list[Path], mask: dict) -> dict[str, dict]:
    def masked(node: dict, **output) -> dict:
        return parse_tool_tree({"type": "output", **output, "input": {**mask, "input": node}})

    coloured = {"type": "colormap", "classes": {"1": "#d7191c", "2": "#ffffbf", "3": "#1a9641"}, "input": {
        "type": "classify", "rules": [{"max": -0.15, "value": 1}, {"min": -0.15, "max": 0.15, "value": 2},
                                      {"min": 0.15, "value": 3}],
        "input": change(clear(ndvi(leaf(first, ["red", "nir"])), first), clear(ndvi(leaf(second, ["red", "nir"])), second))}}
    return {
        "rgb": masked({"type": "identity", "input": leaf(first, ["red", "green", "blue"], "nearest")}, dtype="uint16",
                      nodata=0),
        "ndvi": masked(ndvi(leaf(first, ["red", "nir"])), dtype="float32", nodata=-9999),
        "change": masked(change(ndvi(leaf(first, ["red", "nir"])), ndvi(leaf(second, ["red", "nir"]))), dtype="float32",
                         nodata=-9999),
        "change4": masked(coloured, dtype="uint8", nodata=None),
    }


def main() -> None:
    args = job_arguments(__doc__, "tree-cost.json").parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    first, second = scenes(args.size, args.resolution), later_scenes(args.size, args.resolution)
    aoi = reproject_geometry(shape(AOI), "EPSG:4326", "EPSG:3857")
    grid = plan_grid("EPSG:3857", aoi.bounds, float(args.resolution / np.cos(np.radians(46.0))))
    mask = {"type": "mask", "geometry": to_geojson(aoi), "crs": "EPSG:3857"}
    variants = trees(first, second, mask)
    aoi_path = OUT / "aoi.geojson"
    aoi_path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": AOI}]}))
    rgb_paths = rgb_views(first)
    ensure_ray(num_cpus=os.cpu_count())
    times: dict[str, list[float]] = {name: [] for name in [*variants, "gdalwarp"]}
    sizes: dict[str, int] = {}
    for i in range(args.repeats):
        for name, tree in variants.items():
            path = OUT / f"tree-{name}.tif"
            started = time.perf_counter()
            result = render(tree, grid, path, RenderOptions(tile_size=args.tile_size, resampling="bilinear"))
            times[name].append(time.perf_counter() - started)
            sizes[name] = result.bytes
        times["gdalwarp"].append(run_gdalwarp(rgb_paths, grid, aoi_path, OUT / "gdalwarp.tif"))
        print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    leaves = {name: len(tree.sources()) for name, tree in variants.items()}
    result = {
        "output": {"width": grid.width, "height": grid.height, "megapixels": round(grid.pixels / 1e6, 1)},
        "scenes": {"per_project": len(first), "size_px": args.size, "resolution_m": args.resolution},
        "cpus": os.cpu_count(), "tile_size": args.tile_size, "leaves": leaves,
        "seconds": {k: [round(t, 2) for t in v] for k, v in times.items()},
        "median_s": {k: round(v, 2) for k, v in medians.items()},
        "relative_to_rgb": {k: round(v / medians["rgb"], 2) for k, v in medians.items()},
        "file_bytes": sizes,
    }
    (OUT / args.output).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
