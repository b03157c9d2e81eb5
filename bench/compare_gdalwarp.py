"""geoship's renderer against GDAL's gdalwarp on the same mosaic, reprojection and AOI clip.

Generates overlapping 3-band uint16 scenes in two UTM zones (cached under bench/out/), then alternates:
  (a) geoship: ray_render.render() on an already running local Ray (warm, as a service runs it), the tile
      actors writing the COG's blocks themselves; the actors are kept between renders, as the resident worker
      keeps them (`--cold-actors`: new ones in every render, whose start then counts in its time);
  (b) the same render with GDAL's COG driver writing the COG (`CogOptions(writer="gdal")`, the old path);
  (c) gdalwarp -of COG -multi -wo NUM_THREADS=ALL_CPUS -co NUM_THREADS=ALL_CPUS with a cutline;
all writing a deflate COG with overviews onto the same grid. `--job mosaic` renders instead the plain mosaic of
the scenes as uint8 (no AOI, no cutline). Reports the median wall times, their ratios, the render's floor on
this machine (bench/floor.py: per-core rates of each step, measured here straight after each render, one core
alone and every core at once), how many valid pixels agree with gdalwarp, whether (a) and (b) are identical at
full resolution, and how their overviews agree.
Run:  .venv/bin/python bench/compare_gdalwarp.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import floor  # noqa: E402
import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from rio_cogeo.cogeo import cog_validate  # noqa: E402
from shapely.geometry import shape  # noqa: E402
from shapely.ops import unary_union  # noqa: E402

from cli.samples import SampleScene, write_scene  # noqa: E402
from models.catalogue import scene_source  # noqa: E402
from models.tables import Scene  # noqa: E402
from models.tooltree import Identity, Mask, Output, ProjectSource, parse_tool_tree  # noqa: E402
from ray_render.cluster import ensure_ray  # noqa: E402
from ray_render.geometry import bounds_polygon, reproject_geometry, to_geojson  # noqa: E402
from ray_render.grid import plan_grid  # noqa: E402
from ray_render.inspect import inspect_scene  # noqa: E402
from ray_render.reader import WARP_BLOCK  # noqa: E402
from ray_render.render import RenderOptions, plan_tiles, prestart_actors, render  # noqa: E402
from ray_render.reserve import keep_actors  # noqa: E402
from ray_render.writer import CogOptions  # noqa: E402

OUT = ROOT / "bench" / "out"
AOI = {"type": "Polygon", "coordinates": [[[11.90, 45.91], [12.20, 45.90], [12.26, 46.05], [12.18, 46.16],
                                            [11.93, 46.17], [11.86, 46.04], [11.90, 45.91]]]}


LAYOUT = [("nw", 32632, 11.97, 46.10), ("ne", 32633, 12.15, 46.10), ("sw", 32632, 11.97, 45.96), ("se", 32633, 12.15, 45.96)]


def scenes(size_px: int, resolution: float, label: str = "scenes", **scene_fields) -> list[Path]:
    """Four overlapping scenes, two per UTM zone (`scene_fields`: other SampleScene fields, e.g. another date's
    haze); big ones compute the landscape every 8 px (cli.samples)."""
    step = 1 if size_px <= 4000 else 8
    paths = []
    for name, epsg, lon, lat in LAYOUT:
        path = OUT / f"{label}-{size_px}-{resolution:g}" / f"{name}.tif"
        if not path.exists():
            print(f"generating {path.parent.name}/{path.name} ({size_px} px, EPSG:{epsg})", flush=True)
            scene = SampleScene(name, epsg, lon, lat, size_px=size_px, resolution=resolution, **scene_fields)
            write_scene(scene, path.parent, step=step)
        paths.append(path)
    return paths


def rgb_views(paths: list[Path]) -> list[Path]:
    """VRTs of bands 1-3 of each scene, so gdalwarp (no -b before GDAL 3.7) renders the same three bands."""
    views = []
    for path in paths:
        view = path.with_suffix(".rgb.vrt")
        subprocess.run(["gdal_translate", "-q", "-of", "VRT", "-b", "1", "-b", "2", "-b", "3", str(path), str(view)], check=True)
        views.append(view)
    return views


def fresh(path: Path) -> None:
    """Remove the last run's output before the next is timed: an export always writes a new file, and on ext4
    replacing a file also writes the new one to disk (`ray_render.publish`), which neither side should be timed on."""
    path.unlink(missing_ok=True)


def run_geoship(tree, grid, path: Path, tile_size: int, writer: str = "actors", resampling: str = "nearest") -> float:
    fresh(path)
    started = time.perf_counter()
    render(tree, grid, path, RenderOptions(tile_size=tile_size, resampling=resampling, cog=CogOptions(writer=writer)))
    return time.perf_counter() - started


def run_gdalwarp(paths, grid, aoi_path: Path | None, path: Path, error_threshold: float | None = None,
                 resampling: str = "near") -> float:
    """gdalwarp paints inputs in order (the last one wins overlaps), so it gets them in reverse project order."""
    left, bottom, right, top = grid.bounds
    threshold = ["-et", str(error_threshold)] if error_threshold is not None else []
    cutline = ["-cutline", str(aoi_path)] if aoi_path is not None else []
    command = ["gdalwarp", "-q", "-overwrite", "-t_srs", grid.crs, "-tr", str(grid.resolution), str(grid.resolution),
               "-te", str(left), str(bottom), str(right), str(top), *cutline,
               "-srcnodata", "0", "-dstnodata", "0", "-r", resampling,
               "-of", "COG", "-co", "COMPRESS=DEFLATE", "-co", "PREDICTOR=YES", "-co", "BLOCKSIZE=512",
               "-multi", "-wo", "NUM_THREADS=ALL_CPUS", "-co", "NUM_THREADS=ALL_CPUS", *threshold,
               *[str(p) for p in reversed(paths)], str(path)]
    fresh(path)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def agreement(a: Path, b: Path) -> dict:
    with rasterio.open(a) as da, rasterio.open(b) as db:
        assert (da.width, da.height) == (db.width, db.height)
        equal = within1 = valid = either = 0
        for _, window in da.block_windows(1):
            x, y = da.read(window=window).astype(np.int64), db.read(window=window).astype(np.int64)
            both = (x > 0).all(axis=0) & (y > 0).all(axis=0)
            either += int(((x > 0).all(axis=0) | (y > 0).all(axis=0)).sum())
            valid += int(both.sum())
            equal += int((x == y).all(axis=0)[both].sum())
            within1 += int((np.abs(x - y) <= 1).all(axis=0)[both].sum())
    return {"pixels_valid_in_both": valid, "pixels_valid_in_either": either,
            "share_equal": equal / valid, "share_within_1": within1 / valid}


def job_arguments(description: str, output: str) -> argparse.ArgumentParser:
    """The options every benchmark of this job takes: scene size and resolution, repeats, tile size, output file."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2000, help="pixels per side of each scene")
    parser.add_argument("--resolution", type=float, default=10.0, help="scene pixel size (m)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tile-size", type=int, default=RenderOptions.tile_size, help="pixels per tile side")
    parser.add_argument("--output", default=output, help="file under bench/out/ for the results")
    return parser


def mosaic_scenes(paths: list[Path]) -> list[Path]:
    """uint8 copies of the scenes' first three bands (value / 16, valid pixels at least 1), for the mosaic job."""
    copies = []
    for path in paths:
        copy = path.with_name(path.stem + ".uint8.tif")
        if not copy.exists():
            with rasterio.open(path) as src:
                profile = dict(src.profile, count=3, dtype="uint8", nodata=0, blockxsize=512, blockysize=512)
                with rasterio.open(copy, "w", **profile) as dst:
                    for _, window in src.block_windows(1):
                        data = src.read((1, 2, 3), window=window)
                        dst.write(np.where(data > 0, np.clip(data // 16, 1, 255), 0).astype("uint8"), window=window)
        copies.append(copy)
    return copies


def job(args, paths: list[Path]):
    """(tree, grid, scenes for gdalwarp, AOI file or None) of the chosen job."""
    if args.job == "mosaic":
        paths = mosaic_scenes(paths)
    sources = []
    for path in paths:
        info = asdict(inspect_scene(path=str(path), band_names=["red", "green", "blue"] if args.job == "mosaic" else None))
        sources.append(scene_source(Scene(name=path.stem, owner_id=0, **info)))
    resolution = float(args.resolution / np.cos(np.radians(46.0)))  # native pixel size in Web Mercator here
    leaf = ProjectSource(scenes=sources, bands=["red", "green", "blue"])
    if args.job == "mosaic":  # the whole union of the scenes, no AOI
        union = unary_union([bounds_polygon(s.bounds, s.crs, "EPSG:3857") for s in sources])
        grid = plan_grid("EPSG:3857", union.bounds, resolution)
        tree = parse_tool_tree(Output(input=Identity(input=leaf), dtype="uint8", nodata=0).model_dump(mode="json"))
        return tree, grid, paths, None
    aoi = reproject_geometry(shape(AOI), "EPSG:4326", "EPSG:3857")
    grid = plan_grid("EPSG:3857", aoi.bounds, resolution)
    node = Mask(input=Identity(input=leaf), geometry=to_geojson(aoi), crs="EPSG:3857")
    tree = parse_tool_tree(Output(input=node, dtype="uint16", nodata=0).model_dump(mode="json"))
    aoi_path = OUT / "aoi.geojson"
    feature = {"type": "Feature", "properties": {}, "geometry": AOI}
    aoi_path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return tree, grid, rgb_views(paths), aoi_path


def identical(a: Path, b: Path) -> bool:
    """Whether two COGs hold the same full-resolution pixels."""
    with rasterio.open(a) as da, rasterio.open(b) as db:
        return all(np.array_equal(da.read(window=w), db.read(window=w)) for _, w in da.block_windows(1))


def overview_agreement(ours: Path, gdal: Path) -> list[float]:
    """Per overview level, the share of pixels within 1 DN of GDAL's own overviews of the same pixels."""
    shares = []
    with rasterio.open(ours) as cog:
        levels = len(cog.overviews(1))
    for level in range(levels):
        with rasterio.open(ours, overview_level=level) as a, rasterio.open(gdal, overview_level=level) as b:
            x, y = a.read().astype(np.int64), b.read().astype(np.int64)
            shares.append(round(float((np.abs(x - y) <= 1).all(axis=0).mean()), 6))
    return shares


def main() -> None:
    parser = job_arguments(__doc__, "results.json")
    parser.add_argument("--job", choices=["aoi", "mosaic"], default="aoi",
                        help="aoi: uint16 clipped to the 7-vertex polygon; mosaic: uint8, the whole union, no AOI")
    parser.add_argument("--resampling", default="nearest", help="nearest or bilinear (both sides)")
    parser.add_argument("--skip-exact", action="store_true", help="leave out gdalwarp -et 0 (slow on big outputs)")
    parser.add_argument("--skip-gdal-writer", action="store_true", help="leave out geoship with GDAL's COG driver")
    parser.add_argument("--cold-actors", action="store_true", help="new tile actors in every render")
    args = parser.parse_args()
    if shutil.which("gdalwarp") is None:
        sys.exit("gdalwarp not found: apt-get install gdal-bin")
    OUT.mkdir(parents=True, exist_ok=True)
    tree, grid, warp_inputs, aoi_path = job(args, scenes(args.size, args.resolution))
    warp_resampling = {"nearest": "near"}.get(args.resampling, args.resampling)

    started = time.perf_counter()
    ensure_ray(num_cpus=os.cpu_count())
    ray_start = time.perf_counter() - started
    if not args.cold_actors:  # as `geoship worker` does: actors kept between renders, started before the first
        keep_actors(idle_seconds=3600)
        prestart_actors(os.cpu_count(), RenderOptions().gdal_cache_mb, wait=True)  # running, as a worker's are
    runs = {"geoship": lambda: run_geoship(tree, grid, OUT / "geoship.tif", args.tile_size, resampling=args.resampling),
            "gdalwarp": lambda: run_gdalwarp(warp_inputs, grid, aoi_path, OUT / "gdalwarp.tif", resampling=warp_resampling)}
    if not args.skip_gdal_writer:
        runs["geoship_gdal_writer"] = lambda: run_geoship(tree, grid, OUT / "geoship-gdal-writer.tif", args.tile_size,
                                                          writer="gdal", resampling=args.resampling)
    if not args.skip_exact:
        runs["gdalwarp_exact"] = lambda: run_gdalwarp(warp_inputs, grid, aoi_path, OUT / "gdalwarp-exact.tif", 0,
                                                      resampling=warp_resampling)
    # The floor's pixels: those of the warp blocks the output needs (GDAL's unit of warping), whatever the tile
    # size, so that floors compare across tile sizes (1024 px tiles plan 0.6-4 % more pixels than 512 px ones).
    warp_blocks = plan_tiles(tree, grid, WARP_BLOCK)
    floor_pixels = sum(int(w.width * w.height) for _, w in warp_blocks)
    overview_pixels = floor.overview_pixels([(i.row, i.col) for i, _ in warp_blocks], grid.width, grid.height)
    floor_scene = warp_inputs[0] if args.job == "mosaic" else scenes(args.size, args.resolution)[0]

    def floors_now() -> dict[str, tuple[dict[str, float], float, float]]:
        """The per-core rates and the floor, measured now: beside each render, since this machine's speed drifts
        within minutes (a floor measured once, after all the runs, swung the ratio by a third). "alone": one core
        at a time; "loaded": every core at once, as the render runs them (bench/floor.py). Encoding is measured on
        the render's own blocks: what it really met. Each floor comes also as computed before 2026-12-06
        (`floor.floor_seconds_before`), to compare with earlier results."""
        options = dict(masked=aoi_path is not None, resampling=args.resampling, blocks_of=OUT / "geoship.tif")
        found = {"alone": floor.measure(floor_scene, **options),
                 "loaded": floor.measure_loaded(floor_scene, os.cpu_count(), **options)}
        # A nearest warp of integer scenes needs no nodata masking (it copies nodata values as they are; the
        # readers tell validity from the values since 2026-12-06), so neither does its floor; interpolation does.
        masked_warp = args.resampling != "nearest"
        return {kind: (rates, floor.floor_seconds(rates, floor_pixels, os.cpu_count(), nodata=masked_warp,
                                                  overview=overview_pixels),
                       floor.floor_seconds_before(rates, floor_pixels, os.cpu_count(), nodata=True))
                for kind, rates in found.items()}

    times: dict[str, list[float]] = {name: [] for name in runs}
    floors: dict[str, list[float]] = {"alone": [], "loaded": []}
    floors_before: dict[str, list[float]] = {"alone": [], "loaded": []}
    all_rates: dict[str, list[dict[str, float]]] = {"alone": [], "loaded": []}
    for i in range(args.repeats):
        for name, run in runs.items():
            times[name].append(run())
            if name == "geoship":  # straight after the render
                for kind, (rates, floor_s, before_s) in floors_now().items():
                    floors[kind].append(floor_s)
                    floors_before[kind].append(before_s)
                    all_rates[kind].append(rates)
        print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
              + f", floor {floors['alone'][-1]:.2f} s (all cores loaded: {floors['loaded'][-1]:.2f} s; as computed"
              + f" before 2026-12-06: {floors_before['alone'][-1]:.2f} / {floors_before['loaded'][-1]:.2f} s)", flush=True)
    medians = {k: statistics.median(v) for k, v in times.items()}

    def against(kind: str) -> dict:
        """The floor of `kind` and each render against the floor measured beside it, then their median."""
        ratios = [t / f for t, f in zip(times["geoship"], floors[kind], strict=True)]
        before = [t / f for t, f in zip(times["geoship"], floors_before[kind], strict=True)]
        return {"floor_s": round(statistics.median(floors[kind]), 2), "floors_s": [round(f, 2) for f in floors[kind]],
                "ratio_geoship_to_floor": round(statistics.median(ratios), 3),
                "ratios_to_floor_each_run": [round(r, 3) for r in ratios],
                "floors_s_as_before": [round(f, 2) for f in floors_before[kind]],
                "ratio_geoship_to_floor_as_before": round(statistics.median(before), 3),
                "per_core_rates_mp_s": {step: statistics.median(r[step] for r in all_rates[kind])
                                        for step in all_rates[kind][0]}}
    result = {
        "job": args.job, "resampling": args.resampling,
        "output": {"width": grid.width, "height": grid.height, "bands": 3, "dtype": tree.root.dtype,
                   "megapixels": round(grid.pixels / 1e6, 1), "floor_megapixels": round(floor_pixels / 1e6, 1),
                   "floor_overview_megapixels": round(overview_pixels / 1e6, 1)},
        "scenes": {"count": len(warp_inputs), "size_px": args.size, "resolution_m": args.resolution},
        "cpus": os.cpu_count(), "tile_size": args.tile_size, "ray_start_s": round(ray_start, 2),
        "actors_kept_between_renders": not args.cold_actors,
        "seconds": {k: [round(t, 2) for t in v] for k, v in times.items()},
        "median_s": {k: round(v, 2) for k, v in medians.items()},
        "ratio_geoship_to_gdalwarp": round(medians["geoship"] / medians["gdalwarp"], 3),
        **against("alone"), "with_all_cores_loaded": against("loaded"),
        "agreement_with_gdalwarp": agreement(OUT / "geoship.tif", OUT / "gdalwarp.tif"),
        "cog_valid": cog_validate(str(OUT / "geoship.tif"))[0],
        "gdal": subprocess.run(["gdalwarp", "--version"], capture_output=True, text=True).stdout.strip(),
    }
    if not args.skip_gdal_writer:
        result["ratio_geoship_to_gdal_writer"] = round(medians["geoship"] / medians["geoship_gdal_writer"], 3)
        result["identical_to_gdal_writer_at_full_resolution"] = identical(OUT / "geoship.tif", OUT / "geoship-gdal-writer.tif")
        result["overviews_within_1_dn_of_gdal"] = overview_agreement(OUT / "geoship.tif", OUT / "geoship-gdal-writer.tif")
    if not args.skip_exact:
        result["agreement_with_gdalwarp_exact"] = agreement(OUT / "geoship.tif", OUT / "gdalwarp-exact.tif")
    (OUT / args.output).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
