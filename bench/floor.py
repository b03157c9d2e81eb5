"""This machine's per-core rates for each step a pixel goes through, and the floor they put under a render.

Measured on one core (one thread, one process), on the benchmark's own scenes (bench/out/, made by
compare_gdalwarp.py): decoding the deflate source blocks, warping into the output grid (with the job's
resampling, with and without nodata), evaluating the tree (identity and AOI mask), the 2x2 overview reduction,
and encoding blocks (deflate with the predictor at the export's level), full-resolution and overview blocks
apart. A render's floor decodes, warps, evaluates and encodes each of the N pixels of the warp blocks its output
needs once, then encodes the M pixels of the overview blocks those make and reduces their 4M source pixels,
spread over every core:

    floor = (N / decode + N / warp + N / evaluate + N / encode + M / encode_overview + 4M / reduce) / cores

The warp's rate is the one with nodata masking for interpolating resampling, and without it for nearest: a
nearest warp copies nodata values as they are, and the tile actors warp integer scenes that way since
2026-12-06 (session 12), telling validity from the values. Interpolating warps are measured as the tile actors
run them since 2026-12-06 (session 14): the file's own scale, and what the warp covers told by an alpha band.

M is about N/3, a little more where a block at an edge of the data holds only part of it (an overview block is
needed whole once it holds one pixel). Overview blocks encode more slowly than full-resolution ones (about 13 %
on the 20,000 px job: an averaged pixel differs more from its neighbour, so the predictor leaves more to
compress), hence their own rate. Before 2026-12-06 the floor took M = N/3 at the full-resolution rate, measured
on blocks at least 90 % valid only (`floor_seconds_before`, kept to compare with earlier results); encoding is
now measured on 256 blocks drawn at random from those the render's COG holds, edges of the data included, as the
render meets them (until the next session of that day, on 64 blocks spread evenly through the block list: 10.5
MP/s on the 20,000 px job where every block together encodes at 9.9-10.2).

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
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import rasterio  # noqa: E402
import tifffile  # noqa: E402
from rasterio.enums import Resampling  # noqa: E402
from rasterio.io import MemoryFile  # noqa: E402
from rasterio.vrt import WarpedVRT  # noqa: E402
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
from ray_render.pyramid import Pyramid  # noqa: E402
from ray_render.reader import warp_scales  # noqa: E402

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
        if resampling == "nearest":
            rates[name] = best_rate(grid.pixels, lambda nodata=nodata: reproject(
                chunk, target, src_transform=chunk_transform, src_crs=crs, dst_transform=grid.transform,
                dst_crs=grid.crs, resampling=Resampling.nearest, src_nodata=nodata, dst_nodata=nodata, num_threads=1),
                sync=sync)
        else:
            rates[name] = _interpolating_warp_rate(chunk, target, chunk_transform, crs, grid, resampling, nodata, sync)
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
    if blocks_of is not None:
        samples = {"encode": sample_blocks(blocks_of), "encode_overview": sample_blocks(blocks_of, overviews=True),
                   "encode_dense": spread(dense(output_blocks(blocks_of)))}
    else:
        full = [target[:, r:r + 512, c:c + 512] for r in (0, 512) for c in (0, 512)]
        samples = {"encode": full, "encode_overview": [reduce_block(block, axis, axis, (0, 512), (0, 512), validity)],
                   "encode_dense": full}
    for name, blocks in samples.items():
        rates[name] = encode_rate(blocks, compress, level, sync=sync)
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


def sample_blocks(path: Path, count: int = 256, overviews: bool = False, seed: int = 0) -> list[np.ndarray]:
    """`count` blocks drawn at random (seeded: every run draws the same) from those a rendered COG holds, as its
    encoder met them: full-resolution blocks, or with `overviews` those of every overview level together. A block
    is held when it has bytes (sparse blocks have none). Encoding time varies from block to block far more than
    between images of one kind: on the 20,000 px job, 64 blocks estimate the mean rate within about 5 % (one
    standard deviation), 256 within about 2 %."""
    with tifffile.TiffFile(path) as tif:
        held = [(level, index) for level, page in enumerate(tif.pages) if (level > 0) == overviews
                for index, size in enumerate(page.databytecounts) if size > 0]
    chosen = sorted(random.Random(seed).sample(held, min(count, len(held))))
    blocks = []
    for level in sorted({level for level, _ in chosen}):
        with rasterio.open(path, **({"overview_level": level - 1} if level else {})) as data:
            columns = -(-data.width // data.block_shapes[0][1])
            blocks += [data.read(window=data.block_window(1, index // columns, index % columns))
                       for at, index in chosen if at == level]
    return blocks


def output_blocks(path: Path, count: int = 64, overviews: bool = False) -> list[np.ndarray]:
    """About `4 * count` blocks of a rendered COG, spread evenly over it, that hold data: what its encoder really
    met (compressibility varies across an image far more than between images of one kind). Full-resolution
    blocks, or with `overviews` those of every overview level together. The benchmark jobs' nodata is 0."""
    with rasterio.open(path) as cog:
        levels = list(range(len(cog.overviews(1)))) if overviews else [None]
    datasets = [rasterio.open(path, **({} if level is None else {"overview_level": level})) for level in levels]
    try:
        candidates = [(dataset, window) for dataset in datasets for _, window in dataset.block_windows(1)]
        blocks = [dataset.read(window=window) for dataset, window in candidates[::max(1, len(candidates) // (4 * count))]]
    finally:
        for dataset in datasets:
            dataset.close()
    return [block for block in blocks if (block != 0).any()]


def spread(blocks: list[np.ndarray], count: int = 64) -> list[np.ndarray]:
    """Up to `count` of `blocks`, evenly spaced."""
    return blocks[::max(1, len(blocks) // count)][:count]


def dense(blocks: list[np.ndarray]) -> list[np.ndarray]:
    """The blocks at least 90 % valid: the sample encoding was measured on before 2026-12-06."""
    return [block for block in blocks if (block != 0).all(axis=0).mean() > 0.9]


def overview_pixels(tiles: list, width: int, height: int, blocksize: int = 512) -> int:
    """The pixels of the overview blocks a COG of `width` x `height` has when the blocks `tiles` (row, col) of its
    full resolution hold data (GDAL's level sizes; edge blocks counted within the image, as N counts them)."""
    pyramid = Pyramid(width, height, blocksize, blocksize, tiles, "average")
    pixels = 0
    for reduction in pyramid.reductions():
        level, row, col = reduction.key
        level_width, level_height = pyramid.sizes[level]
        pixels += min(blocksize, level_width - col * blocksize) * min(blocksize, level_height - row * blocksize)
    return pixels


def floor_seconds(rates: dict[str, float], pixels: int, cores: int, nodata: bool = True,
                  overview: int | None = None) -> float:
    """The least time a render of `pixels` pixels of warp blocks, whose overview blocks hold `overview` pixels
    (`overview_pixels`; a third of `pixels` if not given), can take on `cores` at these per-core rates."""
    mp = pixels / 1e6
    mo = overview / 1e6 if overview is not None else mp / 3
    warp = rates["warp"] if nodata else rates["warp_no_nodata"]
    work = mp / rates["decode"] + mp / warp + mp / rates["evaluate"] + mp / rates["encode"] \
        + mo / rates.get("encode_overview", rates["encode"]) + 4 * mo / rates["reduce"]
    return work / cores


def floor_seconds_before(rates: dict[str, float], pixels: int, cores: int, nodata: bool = True) -> float:
    """The floor as computed before 2026-12-06: overviews a third of `pixels`, encoded at the rate of dense
    full-resolution blocks."""
    as_before = {**rates, "encode": rates.get("encode_dense", rates["encode"])}
    as_before.pop("encode_overview", None)
    return floor_seconds(as_before, pixels, cores, nodata)


def _interpolating_warp_rate(chunk: np.ndarray, target: np.ndarray, transform, crs, grid, resampling: str, nodata,
                             sync=None) -> float:
    """The rate of an interpolating warp of `chunk` onto `grid` (into `target`) in one go, as the tile actors run it
    (ray_render/reader.py): the file's own scale, and with nodata, what the warp covers told by an alpha band
    rather than a destination nodata value (GDAL's optimised kernels, the same pixels). Through a warped VRT of
    the chunk in memory: `reproject` of the same took GDAL's generic kernel (10 MP/s against 24 on the mosaic's
    uint8 chunk, 2026-12-06)."""
    xscale, yscale = warp_scales(crs, transform, chunk.shape[2], chunk.shape[1], grid)
    options = dict(crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                   resampling=Resampling[resampling], src_nodata=nodata, nodata=None,
                   XSCALE=f"{xscale:.12g}", YSCALE=f"{yscale:.12g}")
    if nodata is not None:
        options.update(add_alpha=True, init_dest_nodata=False, INIT_DEST=str(nodata))
    profile = dict(driver="GTiff", width=chunk.shape[2], height=chunk.shape[1], count=len(chunk), dtype=chunk.dtype,
                   crs=crs, transform=transform, nodata=nodata)
    with MemoryFile() as memory:
        with memory.open(**profile) as written:
            written.write(chunk)
        with memory.open() as src, rasterio.Env(GDAL_VRT_WARP_USE_DATASET_RASTERIO="YES"):
            # A new VRT each time: the warped blocks would otherwise come from GDAL's cache.
            return best_rate(grid.pixels, lambda: WarpedVRT(src, **options).read([1, 2, 3], out=target), sync=sync)


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
