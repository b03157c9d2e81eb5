"""This machine's per-core rates for each step a pixel goes through, and the floor they put under a render.

Measured on one core (one thread, one process), on the benchmark's own scenes (bench/out/, made by
compare_gdalwarp.py): decoding the deflate source blocks, warping into the output grid (with the job's
resampling, with and without nodata), evaluating the tree (identity and AOI mask), the 2x2 overview reduction,
and encoding blocks (deflate with the predictor at the export's level). A render's floor decodes, warps, evaluates and encodes
each of its N tile pixels once, reduces 4N/3 (every overview level's source) and encodes N/3 more (the
overviews), spread over every core:

    floor = (N / decode + N / warp + N / evaluate + N / encode + N/3 / encode + 4N/3 / reduce) / cores

That floor assumes every core runs at the rate one core reaches alone. `measure_loaded` measures the same rates
with every core running the same step at once (one process per core, in step through a barrier), as a render
runs them: cores share caches, memory bandwidth and clock. On this machine kind, deflate on the 20,000 px job's
blocks ran 5-16 % slower on each of two cores busy together than on one alone (2026-12-05), within the machine's
own drift from minute to minute. That floor is the least time this machine can really take.

Run:  .venv/bin/python bench/floor.py --size 13000 --resolution 1.5   (prints both sets of rates; floors come from
compare_gdalwarp.py, which calls `floor_seconds`)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from rasterio.enums import Resampling  # noqa: E402
from rasterio.warp import reproject  # noqa: E402
from rasterio.windows import Window  # noqa: E402
from shapely.geometry import box, mapping  # noqa: E402

from models.catalogue import scene_source  # noqa: E402
from models.tables import Scene  # noqa: E402
from models.tooltree import Identity, Mask, Output, ProjectSource, parse_tool_tree  # noqa: E402
from ray_render.aoi import AoiRasterizer  # noqa: E402
from ray_render.codec import BlockCodec  # noqa: E402
from ray_render.evaluate import Stack, evaluate, to_output  # noqa: E402
from ray_render.grid import plan_grid  # noqa: E402
from ray_render.inspect import inspect_scene  # noqa: E402
from ray_render.overviews import Axis, Validity, reduce_block  # noqa: E402

SIDE = 2048  # pixels per side of each measured chunk


def best_rate(pixels: int, step, repeats: int = 3, sync=None) -> float:
    """Megapixels per second of `step()`, the best of `repeats` (the least disturbed by a shared machine); `sync()`,
    if given, is called before each repeat (`measure_loaded`'s barrier)."""
    best = float("inf")
    for _ in range(repeats):
        if sync is not None:
            sync()
        started = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - started)
    return pixels / best / 1e6


def measure(scene: Path, masked: bool = True, compress: str = "DEFLATE", level: int | None = None,
            resampling: str = "nearest", blocks_of: Path | None = None, sync=None) -> dict[str, float]:
    """Per-core rates (MP/s of 3 bands in the scene's type) of every step, on a chunk of `scene`; the evaluation is
    the benchmark job's tree: the bands, clipped to an AOI when `masked`; the warp with the job's `resampling`;
    the encoding on blocks of the rendered COG `blocks_of` when given (what its encoder really met), else on blocks
    of the warped chunk. `sync`: see `best_rate`."""
    rates = {}
    with rasterio.open(scene) as src:
        dtype = src.dtypes[0]
        window = Window(src.width // 4, src.height // 4, SIDE, SIDE)
        chunk_transform = src.window_transform(window)
        crs = src.crs
        chunk = src.read((1, 2, 3), window=window)
    # A fresh dataset each time: GDAL's block cache would otherwise serve the repeats without decoding.
    rates["decode"] = best_rate(SIDE * SIDE, lambda: _read_fresh(scene, window), sync=sync)
    left, top = chunk_transform.c, chunk_transform.f
    grid = plan_grid("EPSG:3857", _bounds_3857(crs, left, top, chunk_transform.a), chunk_transform.a * 1.4)
    target = np.zeros((3, grid.height, grid.width), chunk.dtype)
    for name, nodata in (("warp", 0), ("warp_no_nodata", None)):
        rates[name] = best_rate(grid.pixels, lambda nodata=nodata: reproject(
            chunk, target, src_transform=chunk_transform, src_crs=crs, dst_transform=grid.transform, dst_crs=grid.crs,
            resampling=Resampling[resampling], src_nodata=nodata, dst_nodata=nodata, num_threads=1), sync=sync)
    tile = target[:, :512, :512]
    aoi = box(*grid.bounds).buffer(-grid.resolution * 100)
    source = scene_source(Scene(name="floor", owner_id=0, **asdict(inspect_scene(path=str(scene)))))
    leaf = ProjectSource(scenes=[source], bands=["red", "green", "blue"])
    node = Identity(input=leaf)
    if masked:
        node = Mask(input=node, geometry=mapping(aoi), crs=grid.crs)
    tree = parse_tool_tree(Output(input=node, dtype=dtype, nodata=0).model_dump(mode="json"))
    rasterizer = AoiRasterizer(aoi, grid)
    stack = Stack(["red", "green", "blue"], np.ma.masked_equal(tile, 0))
    rates["evaluate"] = best_rate(512 * 512, lambda: [to_output(tree.root, evaluate(
        tree.root.input, lambda leaf, w: stack, lambda mask, w: rasterizer.inside(w), Window(0, 0, 512, 512), grid))
        for _ in range(4)], sync=sync) * 4
    block = target[:, :1024, :1024]
    axis = Axis(1024, 512, "average")
    validity = Validity(dtype, 0)
    rates["reduce"] = best_rate(1024 * 1024, lambda: reduce_block(block, axis, axis, (0, 512), (0, 512), validity),
                                sync=sync)
    blocks = output_blocks(blocks_of) if blocks_of is not None else \
        [target[:, r:r + 512, c:c + 512] for r in (0, 512) for c in (0, 512)]
    rates["encode"] = encode_rate(blocks, compress, level, sync=sync)
    return {k: round(v, 1) for k, v in rates.items()}


def measure_loaded(scene: Path, cores: int, **options) -> dict[str, float]:
    """`measure`'s rates with every one of `cores` running each step at the same time: one process per core
    (spawned, not forked: the caller may run Ray's threads), in step through a barrier before every repeat; each
    rate is the mean of the processes' own."""
    context = multiprocessing.get_context("spawn")
    barrier, answers = context.Barrier(cores), context.Queue()
    workers = [context.Process(target=_measure_in_step, args=(barrier, answers, scene, options)) for _ in range(cores)]
    for worker in workers:
        worker.start()
    try:
        found = [answers.get(timeout=600) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=60)
    failed = [f for f in found if isinstance(f, str)]
    if failed:
        raise RuntimeError(f"a loaded measurement failed: {failed[0]}")
    return {step: round(sum(f[step] for f in found) / cores, 1) for step in found[0]}


def _measure_in_step(barrier, answers, scene: Path, options: dict) -> None:
    try:
        answers.put(measure(scene, sync=barrier.wait, **options))
    except Exception as exc:  # the parent reports it; a worker that died silently would leave the others waiting
        barrier.abort()
        answers.put(f"{type(exc).__name__}: {exc}")


def encode_rate(blocks: list[np.ndarray], compress: str = "DEFLATE", level: int | None = None, sync=None) -> float:
    """Per-core MP/s of encoding these blocks (predictor and codec, as the tile actors do)."""
    codec = BlockCodec(compress, blocks[0].dtype.name, 512, level)
    return best_rate(sum(b.shape[1] * b.shape[2] for b in blocks), lambda: [codec.encode(b) for b in blocks], sync=sync)


def output_blocks(path: Path, count: int = 64) -> list[np.ndarray]:
    """Up to `count` full-resolution blocks of a rendered COG, spread over it and holding data: what its encoder
    really met (compressibility varies across an image far more than between images of one kind)."""
    with rasterio.open(path) as cog:
        windows = [w for _, w in cog.block_windows(1)]
        step = max(1, len(windows) // (4 * count))
        blocks = []
        for window in windows[::step]:
            block = cog.read(window=window)
            if (block != 0).all(axis=0).mean() > 0.9:
                blocks.append(block)
        return blocks[::max(1, len(blocks) // count)][:count]


def floor_seconds(rates: dict[str, float], pixels: int, cores: int, nodata: bool = True) -> float:
    """The least time a render of `pixels` tile pixels can take on `cores` at these per-core rates."""
    mp = pixels / 1e6
    warp = rates["warp"] if nodata else rates["warp_no_nodata"]
    work = mp / rates["decode"] + mp / warp + mp / rates["evaluate"] + (mp + mp / 3) / rates["encode"] \
        + (4 * mp / 3) / rates["reduce"]
    return work / cores


def _read_fresh(scene: Path, window: Window):
    with rasterio.open(scene) as src:
        return src.read((1, 2, 3), window=window)


def _bounds_3857(crs, left, top, resolution):
    from rasterio.warp import transform_bounds

    return transform_bounds(crs, "EPSG:3857", left, top - SIDE * resolution, left + SIDE * resolution, top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=13000)
    parser.add_argument("--resolution", type=float, default=1.5)
    parser.add_argument("--resampling", default="nearest", help="the warp's resampling (nearest, bilinear, ...)")
    args = parser.parse_args()
    scene = ROOT / "bench" / "out" / f"scenes-{args.size}-{args.resolution:g}" / "nw.tif"
    if not scene.exists():
        sys.exit(f"{scene} is missing: run bench/compare_gdalwarp.py --size {args.size} --resolution {args.resolution} first")
    print(json.dumps({"alone": measure(scene, resampling=args.resampling),
                      "loaded": measure_loaded(scene, os.cpu_count(), resampling=args.resampling)}, indent=2))


if __name__ == "__main__":
    main()
