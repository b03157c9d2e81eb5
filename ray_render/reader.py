"""Read a scene's bands for one output tile, warped straight into the output grid.

A `SceneReader` opens each of its files once (as a `WarpedVRT` onto the whole output grid) and then
serves any window of that grid; GDAL warps only the blocks the window needs.

Why outputs do not depend on the tile size: GDAL's approximate transformer (like gdalwarp's default
`-et 0.125`) computes exact coordinates at a few points of each warped row and interpolates between them,
so the interpolation depends on the extent of what is warped at once. GDAL's warped VRT warps in fixed blocks
of `WARP_ROWS` x `WARP_BLOCK` pixels on the output grid (its own default size: rasterio hands `blockxsize` and
`blockysize` to GDAL as warp options, which the warped VRT does not read), whatever window is asked for, so
every tiling warps the same blocks the same way and yields the same pixels. GDAL would otherwise warp a request
larger than a block (or the whole grid) in one go, so reads run with `BLOCKWISE_WARP`. A threshold of 0 selects
the exact transformer (one PROJ call per pixel, about ten times slower to warp). A later scene in a mosaic
needs warping only for the blocks, and within them the rows, where earlier scenes left pixels empty
(`warp_rows`).

Why an interpolating warp of an integer scene whose nodata value is its type's least or greatest gets an alpha
band and no destination nodata value: with one, GDAL masks the destination of every block (so that a pixel
partly covered by the source is not blended with what the block held before) and so sends every block down its
general kernel. An alpha band gives the kernel the same information as a density, and blocks whose source pixels
are all valid then take GDAL's optimised kernels: a bilinear warp of the benchmark's mosaic took 4 MP/s a core
the first way, 8 the second. The pixels are the same as the masked warp's wherever a covered pixel holds data in
every band; the rare warp blocks where it holds nodata in some band (NAIP's near-infrared is 0 on some water) are
read again from the masked warp (`SceneReader._mend_covered`): there, how GDAL masks bands together decides. Both
ways are checked against GDAL's masked warp in the tests.

Why a reader warps only the bands its tree reads: GDAL's warped VRT warps every band of its source for each
block, whichever bands are asked for, so a 4-band file read for RGB paid for four. Opened through a band subset
(`vrt://...?bands=`), it warps only those, and the pixels are the same with nearest resampling. With
interpolating resampling they differ where only the bands left out hold data: GDAL takes a source pixel as
nodata when every warped band is, so a pixel whose red, green and blue are nodata but whose fourth band is not
used to count as valid and spread its nodata value into its neighbours' interpolation.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from contextlib import ExitStack

import numpy as np
import rasterio
import rasterio.warp
import shapely
from affine import Affine
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NodataShadowWarning, RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from shapely.geometry import box, shape

from models.errors import SceneReadError, SceneUnavailable
from models.tooltree import SceneSource
from ray_render.geometry import bounds_polygon, reproject_geometry
from ray_render.grid import OutputGrid
from ray_render.nodata import exact_nodata, nodata_pixel
from ray_render.remote import ON_REMOTE_OPEN, gdal_path, is_missing_or_forbidden, is_remote

# Columns and rows of the blocks GDAL's warped VRT computes at once, fixed to the output grid (see the module
# docstring). Tiles and halos are whole multiples of WARP_BLOCK in both directions.
WARP_BLOCK = 512
WARP_ROWS = 128
# GDAL's default error threshold of the approximate transformer, in output pixels (gdalwarp -et).
DEFAULT_ERROR_THRESHOLD = 0.125
# Interpolating resamplings whose values lie between the values of the valid source pixels they weigh (no
# negative weights, as cubic and lanczos have): see `SceneReader._coverage_by_alpha`.
WITHIN_SOURCE_RANGE = frozenset({Resampling.bilinear, Resampling.cubic_spline, Resampling.average, Resampling.mode,
                                 Resampling.min, Resampling.max, Resampling.med, Resampling.q1, Resampling.q3})
# Keeps GDAL from warping a large request as one chunk (VRTWarpedDataset::IRasterIO), which would make
# the approximation, and so the pixels, depend on the request's extent.
BLOCKWISE_WARP = {"GDAL_VRT_WARP_USE_DATASET_RASTERIO": "NO"}

class SceneReader:
    """Serves windows of one scene, warped onto an output grid. Use as a context manager."""

    def __init__(self, scene: SceneSource, grid: OutputGrid, resampling: Resampling = Resampling.nearest,
                 error_threshold: float = DEFAULT_ERROR_THRESHOLD, pad: int = 0, bands: Iterable[str] | None = None):
        """`bands`: the names of every band that will be read (all of the scene's when None); only those are
        warped, with the files' alpha bands."""
        self.scene = scene
        self.bands = None if bands is None else set(bands)
        self.grid = grid
        self.resampling = resampling
        self.error_threshold = error_threshold
        # Rows the VRT warps at once, on the grid's multiples of them: a read of whole strips warps nothing else.
        self.warp_rows = WARP_ROWS
        # Pixels of halo beyond the grid on every side that windows may reach (a multiple of WARP_BLOCK).
        self.pad = pad
        self._stack = ExitStack()
        self._vrts: dict[str, WarpedVRT] = {}
        self._positions: dict[str, dict[int, int]] = {}  # file -> its band indexes -> their indexes in its VRT
        self._alpha: dict[str, int | None] = {}  # file -> its VRT's alpha band (its own, or one the warp adds)
        self._nodata: dict[str, float] = {}  # file -> its nodata value, where the warp leaves masking to `_valid`
        # Files warped with an alpha band for coverage -> (their source, the options of GDAL's masked warp, that
        # warp once opened): see `_mend_covered`.
        self._coverage: dict[str, list] = {}
        self.bytes_read = 0  # source pixels read (as warped into the tiles), for the tile actors' metrics
        footprint = bounds_polygon(scene.bounds, scene.crs, grid.crs)
        self.footprint_bounds = footprint.bounds  # in output CRS units
        self._reach = _reach(scene, grid, error_threshold)

    def __enter__(self) -> SceneReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()
        self._vrts.clear()

    def overlaps(self, window: Window) -> bool:
        """Whether the scene's warp can give a pixel of `window` a value: the footprint's bounding box reaches it,
        and so does the scene's data area, or its footprint if it has none (grown to be safe: `_reach`)."""
        # Called for every strip of every tile a scene might fill (1,654 times in the benchmark's mosaic): shapely's
        # own functions here rather than a Polygon object, and plain arithmetic in `window_bounds`, took it from 48 us
        # a call to about 8.
        left, bottom, right, top = self.grid.window_bounds(window)
        sl, sb, sr, st = self.footprint_bounds
        if not (sl < right and sr > left and sb < top and st > bottom):
            return False
        return self._reach is None or bool(shapely.intersects(self._reach, shapely.box(left, bottom, right, top)))

    def _vrt(self, uri: str) -> WarpedVRT:
        if uri not in self._vrts:
            try:
                with rasterio.Env(**(ON_REMOTE_OPEN if is_remote(uri) else {})):
                    src = self._stack.enter_context(rasterio.open(gdal_path(uri)))
                    src = self._band_subset(uri, src)
            except RasterioError as exc:
                raise self._failure("open", uri, exc) from None
            options = dict(
                crs=self.grid.crs,
                transform=self.grid.transform @ Affine.translation(-self.pad, -self.pad),
                width=self.grid.width + 2 * self.pad,
                height=self.grid.height + 2 * self.pad,
                resampling=self.resampling,
                # WarpedVRT cannot be opened with a tolerance of exactly 0; 1e-9 px is the exact transformer.
                tolerance=self.error_threshold or 1e-9,
            )
            if self.resampling != Resampling.nearest and src.crs is not None and not src.transform.is_identity:
                # The kernel's scale, one for the whole file rather than GDAL's guess for each block (see
                # `warp_scales`). Nearest takes one source pixel whatever the scale.
                scales = warp_scales(src.crs, src.transform, src.width, src.height, self.grid)
                if all(math.isfinite(scale) and scale > 0 for scale in scales):  # else GDAL's guesses, as before
                    options.update(XSCALE=f"{scales[0]:.12g}", YSCALE=f"{scales[1]:.12g}")
            nodata = self.scene.nodata if self.scene.nodata is not None else src.nodata
            if nodata is not None and self._valid_from_values(src.dtypes[0], nodata):
                # Nearest resampling copies each source value as it is, a nodata value too: masking nodata in the
                # warp changes no pixel, but takes GDAL's masked kernels. The warp fills what no source pixel
                # covers with the nodata value, and which pixels are valid is read from the values (`_valid`).
                options.update(src_nodata=None, nodata=None, init_dest_nodata=False, INIT_DEST=str(int(nodata)))
                self._nodata[uri] = nodata
            elif nodata is not None and self._coverage_by_alpha(src, nodata):
                # The source's nodata pixels stay masked; what the warp covers is told to GDAL by an alpha band
                # rather than a destination nodata mask (see the module docstring). Uncovered pixels hold nodata,
                # and validity is read from the values.
                self._coverage[uri] = [src, dict(options, src_nodata=nodata, nodata=nodata), None]
                options.update(src_nodata=nodata, nodata=None, add_alpha=True, init_dest_nodata=False,
                               INIT_DEST=str(int(nodata)))
                self._nodata[uri] = nodata
            elif nodata is not None:
                options.update(src_nodata=nodata, nodata=nodata)
            elif ColorInterp.alpha not in src.colorinterp:
                # No nodata value: an added alpha band tells where the source has pixels at all (GDAL fills
                # it from the source's internal mask, if any). A source alpha band is used as it is.
                options.update(add_alpha=True)
            vrt = self._stack.enter_context(WarpedVRT(src, **options))
            alpha = [i for i, kind in zip(vrt.indexes, vrt.colorinterp, strict=True) if kind == ColorInterp.alpha]
            self._alpha[uri] = alpha[-1] if alpha else None
            self._vrts[uri] = vrt
        return self._vrts[uri]

    def _valid_from_values(self, dtype: str, nodata: float) -> bool:
        """Whether a file's validity can come from its warped values: nearest resampling, an integer type and an
        integer nodata value it can hold."""
        return self.resampling == Resampling.nearest and exact_nodata(np.dtype(dtype), nodata)

    def _coverage_by_alpha(self, src, nodata: float) -> bool:
        """Whether a file's interpolating warp can tell GDAL its coverage by an alpha band (see the module
        docstring): an integer type whose least or greatest value is the nodata value, no alpha band of its own,
        and a resampling whose values lie between those of the valid source pixels it weighs, so that a pixel
        comes out as nodata only where its source pixels hold nodata."""
        dtype = np.dtype(src.dtypes[0])
        return (self.resampling in WITHIN_SOURCE_RANGE and exact_nodata(dtype, nodata)
                and nodata in (np.iinfo(dtype).min, np.iinfo(dtype).max) and ColorInterp.alpha not in src.colorinterp)

    def _band_subset(self, uri: str, src):
        """`src`, or a view of it holding only the bands this reader reads and its alpha bands (see the module's
        docstring); records where each band is in what it returns."""
        kept = set(src.indexes)
        if self.bands is not None:
            read = {band.index for name in self.bands if (band := self.scene.band(name)) is not None and band.uri == uri}
            alpha = {i for i, kind in zip(src.indexes, src.colorinterp, strict=True) if kind == ColorInterp.alpha}
            # A '?' in the path (a signed URL's query) would be taken for the subset's own options.
            if read and (read | alpha) < kept and "?" not in src.name:
                kept = read | alpha
                listed = ",".join(str(i) for i in sorted(kept))
                src = self._stack.enter_context(rasterio.open(f"vrt://{src.name}?bands={listed}"))
        self._positions[uri] = {index: position for position, index in enumerate(sorted(kept), start=1)}
        return src

    def _position(self, uri: str, index: int) -> int:
        """Where band `index` of the file `uri` is in its VRT."""
        if index not in self._positions[uri]:
            raise ValueError(f"scene {self.scene.name}: band {index} of {uri} is read but was not declared to its reader")
        return self._positions[uri][index]

    def read(self, bands: list[str], window: Window, dtype) -> tuple[np.ndarray, np.ndarray]:
        """(data, valid) of shape (len(bands), rows, cols); bands the scene lacks are all invalid. `window` is in
        the grid's pixels and may reach `pad` pixels beyond it."""
        shape = (len(bands), int(window.height), int(window.width))
        by_uri: dict[str, list[tuple[int, int]]] = {}
        for position, name in enumerate(bands):
            band = self.scene.band(name)
            if band is not None:
                by_uri.setdefault(band.uri, []).append((position, band.index))
        # One file holding every band (the usual multi-band scene): what it reads is the result, with no empty
        # arrays filled and copied into: 7 % of the nearest mosaic's reading time (2026-12-06).
        whole = len(by_uri) == 1 and len(next(iter(by_uri.values()))) == len(bands)
        data = None if whole else np.zeros(shape, dtype=dtype)
        valid = None if whole else np.zeros(shape, dtype=bool)
        for uri, wanted in by_uri.items():
            vrt = self._vrt(uri)
            positions = [p for p, _ in wanted]
            indexes = [self._position(uri, i) for _, i in wanted]
            padded = Window(window.col_off + self.pad, window.row_off + self.pad, window.width, window.height)
            try:
                with rasterio.Env(**BLOCKWISE_WARP), warnings.catch_warnings():
                    # A nodata value wins over an alpha band (often a NIR band mislabelled as alpha, as in 4-band
                    # files written as RGBA): that is the intent, so rasterio's warning about it is noise.
                    warnings.simplefilter("ignore", NodataShadowWarning)
                    read = vrt.read(indexes, window=padded)
                    if uri in self._coverage:
                        self._mend_covered(uri, read, indexes, padded)
                    mask = _valid(vrt, read, indexes, padded, self._alpha[uri], self._nodata.get(uri))
                    if whole:  # `positions` are 0, 1, ...: every band, in order
                        data, valid = read.astype(dtype, copy=False), mask
                    else:
                        data[positions] = read
                        valid[positions] = mask
                self.bytes_read += read.shape[1] * read.shape[2] * len(positions) * np.dtype(dtype).itemsize
            except RasterioError as exc:
                raise self._failure("read", uri, exc) from None
        return data, valid

    def _mend_covered(self, uri: str, read: np.ndarray, indexes: list[int], window: Window) -> None:
        """Makes `read` (bands `indexes` over `window` of a file warped with an alpha band for coverage) exactly GDAL's
        masked warp. Only where a covered pixel holds nodata in some band can they differ: GDAL's masked warp leaves
        such a band uncovered, or moves a value that came out as nodata off it, depending on how it masks the bands
        together. The warp blocks holding such pixels are read again from the masked warp."""
        doubtful = (read == nodata_pixel(read.dtype, self._nodata[uri])).any(axis=0)
        if not doubtful.any():
            return
        doubtful &= self._vrts[uri].read(self._alpha[uri], window=window) > 0
        blocks = _blocks_holding(doubtful, window)
        if not blocks:
            return
        src, options, masked = self._coverage[uri]
        if masked is None:
            masked = self._coverage[uri][2] = self._stack.enter_context(WarpedVRT(src, **options))
        for rows, cols in blocks:
            part = Window(window.col_off + cols.start, window.row_off + rows.start, cols.stop - cols.start,
                          rows.stop - rows.start)
            read[:, rows, cols] = masked.read(indexes, window=part)

    def _failure(self, doing: str, uri: str, exc: Exception) -> Exception:
        """Our error for a failed open or read, naming the scene: permanent when the file is missing or forbidden
        (retrying cannot help), else retryable (a network failure)."""
        message = str(exc).replace(gdal_path(uri), uri)
        if is_remote(uri) and is_missing_or_forbidden(uri):
            return SceneUnavailable(f"scene {self.scene.name}: {uri} is missing or not readable with the platform's "
                                    f"credentials: {message}")
        return SceneReadError(f"scene {self.scene.name}: cannot {doing} {uri}: {message}")


def _valid(vrt: WarpedVRT, read: np.ndarray, indexes: list[int], window: Window, alpha: int | None,
           nodata: float | None = None) -> np.ndarray:
    """Which pixels of `read` (bands `indexes` of `vrt` over `window`) hold data; `alpha`: the VRT's alpha band;
    `nodata`: the file's nodata value where the VRT has none (a nearest warp without masking, or an interpolating
    one with an alpha band for coverage: `SceneReader._coverage_by_alpha`).

    With a nodata value, each band's own mask: for integer bands, where the pixel differs from it, computed here
    from the pixels already read rather than by reading the bands again (about 5 % of a read); floats (GDAL
    compares those within a tolerance) as GDAL's masks. Without one, the VRT's alpha band (the source's, or the
    one added from its mask), read as a band: GDAL's masks honour an alpha band only in datasets of 2 or 4 bands,
    so a 4-band file's warp (5 bands with its alpha) would have every pixel valid, its footprint's outside too.
    """
    nodata = vrt.nodata if nodata is None else nodata
    if nodata is None and alpha is not None:
        return np.broadcast_to(vrt.read(alpha, window=window) > 0, read.shape).copy()
    if (pixel := nodata_pixel(read.dtype, nodata)) is not None:
        return read != pixel
    return vrt.read_masks(indexes, window=window) > 0


def warp_scales(crs, transform: Affine, width: int, height: int, grid: OutputGrid) -> tuple[float, float]:
    """GDAL's XSCALE and YSCALE for warping a file (`crs`, `transform`, `width` x `height`) onto `grid`: output
    pixels per source pixel along the grid's columns and along its rows, from the transformation's derivatives at
    the file's centre.

    Why not GDAL's own: it estimates them for each warped block from the bounding box of the source pixels the
    block needs, which a rotation between the grids inflates. A 512 x 128 block of the benchmark's mosaic (two UTM
    zones into Web Mercator) needs 150 source rows for its 128, so GDAL widened the bilinear kernel as if it were
    reducing by 0.85: a blur that varied with each block's shape, and a slow kernel. gdalwarp's own chunks are
    large and square, so its estimate comes close to the true scale, as does this one whatever the block.
    """
    centre = transform @ (width / 2, height / 2)
    (x,), (y,) = rasterio.warp.transform(crs, grid.crs, [centre[0]], [centre[1]])
    col, row = ~grid.transform @ (x, y)
    step = 16.0  # output pixels: far enough for the derivative to outweigh rounding, near enough to be local
    corners = [grid.transform @ point for point in ((col, row), (col + step, row), (col, row + step))]
    xs, ys = rasterio.warp.transform(grid.crs, crs, [c[0] for c in corners], [c[1] for c in corners])
    (c0, r0), (c1, r1), (c2, r2) = [~transform @ point for point in zip(xs, ys, strict=True)]
    # A centre the grid's CRS cannot hold comes back infinite or at one point: no scale (the caller checks).
    across, down = math.hypot(c1 - c0, r1 - r0), math.hypot(c2 - c0, r2 - r0)
    return (step / across if across else math.inf), (step / down if down else math.inf)


def _blocks_holding(flags: np.ndarray, window: Window) -> list[tuple[slice, slice]]:
    """The warp blocks (`WARP_ROWS` x `WARP_BLOCK`, on the VRT's grid) of `window` where `flags` (one per pixel of
    `window`) holds a True, as (rows, cols) slices of `window`, each cut to it."""
    row0, col0 = int(window.row_off), int(window.col_off)
    rows = [slice(r0 - row0, r1 - row0) for r0, r1 in block_spans(row0, flags.shape[0], WARP_ROWS)]
    cols = [slice(c0 - col0, c1 - col0) for c0, c1 in block_spans(col0, flags.shape[1])]
    return [(r, c) for r in rows if flags[r].any() for c in cols if flags[r, c].any()]


def block_spans(start: int, length: int, size: int = WARP_BLOCK) -> list[tuple[int, int]]:
    """[start, start + length) cut at the multiples of `size` (negative ones too: a halo's)."""
    cuts = [start, *range((start // size + 1) * size, start + length, size), start + length]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def _reach(scene: SceneSource, grid: OutputGrid, error_threshold: float):
    """Where warping `scene` onto `grid` can give a pixel a value, in the grid's CRS (prepared for intersection
    tests), or None if that cannot be told (the footprint's bounding box decides alone).

    GDAL gives a pixel a value only where its centre maps inside the scene's raster, onto a valid source pixel: its
    masked kernels skip a pixel whose centre's source pixel is invalid, however far their weights reach (checked
    for nearest, bilinear, cubic, lanczos and average, reductions included, by the tests). Its approximate
    transformer may misplace that point by up to `error_threshold` source pixels. So the scene's data area
    (`ray_render.data_area`; its bounds if it has none) is grown by one source pixel more than that, and the
    reprojected polygon by one output pixel for its densified edges: a window this misses gets nothing from the
    scene."""
    rx, ry = (abs(r) for r in scene.resolution)
    grow = 1 + error_threshold
    left, bottom, right, top = scene.bounds
    try:
        if scene.data_area is None:
            area = box(left - grow * rx, bottom - grow * ry, right + grow * rx, top + grow * ry)
        else:
            area = shape(scene.data_area).buffer(grow * max(rx, ry), join_style="mitre")
        polygon = reproject_geometry(area, scene.crs, grid.crs).buffer(abs(grid.resolution))
    except Exception:  # noqa: BLE001 - a footprint that cannot be reprojected leaves the bounding box to decide
        return None
    if not polygon.is_valid or polygon.is_empty:
        return None
    shapely.prepare(polygon)
    return polygon
