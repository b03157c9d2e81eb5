"""Overview levels computed as GDAL computes them, one block at a time.

The COG's overviews are built from blocks of the level below, so tile actors can build them where the pixels
already are. To be interchangeable with GDAL's own (`gdaladdo`, the COG driver), each level follows GDAL's
rules exactly:

- Level sizes: each level halves the previous one, rounding down, until both sides fit in one block.
- Each level is computed from the one below it (not from full resolution), and pixels are rounded to the
  output type (half away from zero) before the next level reads them.
- AVERAGE is the area-weighted mean of the source pixels under each output pixel, ignoring invalid ones
  (nodata, NaN, or alpha 0 for every band of an RGBA output). When a side is odd, the ratio is a little over
  2 and an output pixel straddles up to four source pixels with fractional weights; when it is even, it is
  the plain 2x2 mean (computed in integers). A valid mean that lands on the nodata value is nudged off it.
- NEAREST takes the source pixel at round(i * ratio).

Because the ratio drifts by less than one source pixel over a whole level, a block of level L reads the
blocks of level L-1 below it plus at most one pixel column and row of its right and lower neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OVERVIEW_METHODS = ("average", "nearest")


def level_sizes(width: int, height: int, blocksize: int) -> list[tuple[int, int]]:
    """(width, height) of every level, full resolution first: halved (rounded down) until one block holds it."""
    sizes = [(width, height)]
    while sizes[-1][0] > blocksize or sizes[-1][1] > blocksize:
        w, h = sizes[-1]
        sizes.append((max(1, w // 2), max(1, h // 2)))
    return sizes


@dataclass(frozen=True)
class Axis:
    """One axis of one reduction: `source` pixels down to `target`, by `method`."""

    source: int
    target: int
    method: str

    @property
    def halves(self) -> bool:
        """Whether each output pixel is exactly two source pixels (the source side is even)."""
        return self.source == 2 * self.target

    def span(self, start: int, stop: int) -> tuple[int, int]:
        """The source pixels [lo, hi) that output pixels [start, stop) read."""
        if self.method == "nearest":
            index = self._nearest(np.array([start, stop - 1]))
            return int(index[0]), int(index[1]) + 1
        lo = start * self.source // self.target
        hi = -(-stop * self.source // self.target)
        return lo, min(hi, self.source)

    def _nearest(self, i: np.ndarray) -> np.ndarray:
        # GDAL's own arithmetic, in doubles: int(0.5 + i * ratio).
        ratio = self.source / self.target
        return np.minimum((0.5 + i * ratio).astype(np.int64), self.source - 1)

    def taps(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """For output pixels [start, stop): source indices (taps, n), relative to `span`'s lo, and their weights."""
        lo, hi = self.span(start, stop)
        i = np.arange(start, stop)
        if self.method == "nearest":
            return (self._nearest(i) - lo)[None, :], np.ones((1, len(i)))
        ratio = self.source / self.target
        left, right = i * ratio, (i + 1) * ratio
        first = i * self.source // self.target
        count = int((-(-(i + 1) * self.source // self.target) - first).max())
        index = first[None, :] + np.arange(count)[:, None]
        weight = np.clip(np.minimum(right, index + 1) - np.maximum(left, index), 0.0, None)
        weight[index >= hi] = 0.0
        return np.minimum(index, hi - 1) - lo, weight


@dataclass(frozen=True)
class Validity:
    """Which pixels count: those not equal to `nodata` (NaN counts as nodata for floats), or, with `alpha`,
    those whose last band is not 0 (then every band, alpha included, is averaged over them)."""

    dtype: str
    nodata: float | None = None
    alpha: bool = False

    def mask(self, pixels: np.ndarray) -> np.ndarray | None:
        """A boolean mask broadcastable to `pixels` (bands, rows, cols), or None when every pixel is valid."""
        if self.alpha:
            return (pixels[-1:] != 0)
        if np.issubdtype(pixels.dtype, np.floating):
            valid = ~np.isnan(pixels)
            if self.nodata is not None and not np.isnan(self.nodata):
                valid &= pixels != self.nodata
            return valid
        if self.nodata is None:
            return None
        return pixels != self.nodata

    @property
    def empty(self) -> float:
        """The value of a pixel with nothing valid under it."""
        return 0 if self.alpha or self.nodata is None else self.nodata

    def replacement(self) -> float | None:
        """What a valid mean equal to nodata becomes (GDAL's rule): one step up, or down at the type's top."""
        if self.alpha or self.nodata is None or np.isnan(self.nodata):
            return None
        dtype = np.dtype(self.dtype)
        if np.issubdtype(dtype, np.integer):
            return self.nodata - 1 if self.nodata == np.iinfo(dtype).max else self.nodata + 1
        top = np.finfo(dtype).max
        return float(np.nextafter(dtype.type(self.nodata), dtype.type(-top if self.nodata == top else top)))


def reduce_block(source: np.ndarray, y: Axis, x: Axis, rows: tuple[int, int], cols: tuple[int, int],
                 validity: Validity) -> np.ndarray:
    """Output pixels rows x cols (each a [start, stop) range of the target level) from `source`, the source level's
    pixels over exactly `y.span(*rows)` x `x.span(*cols)`, shaped (bands, rows, cols)."""
    if y.method == "nearest":
        (iy,), _ = y.taps(*rows)
        (ix,), _ = x.taps(*cols)
        return source[:, iy][:, :, ix]
    mask = validity.mask(source)
    if y.halves and x.halves and np.issubdtype(source.dtype, np.integer):
        total, count = _sum_halves(source, mask)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(count > 0, np.abs(total) * 2 + count, 0) // np.maximum(2 * count, 1)
        mean = np.where(total < 0, -mean, mean)  # half away from zero, as GDAL rounds
    else:
        total, count = _weighted_sums(source, mask, y.taps(*rows), x.taps(*cols))
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = total / np.where(count > 0, count, 1)
        if np.issubdtype(np.dtype(validity.dtype), np.integer):
            mean = np.sign(mean) * np.floor(np.abs(mean) + 0.5)
    return _to_dtype(mean, count > 0, validity)


def _sum_halves(source: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Sums of valid values and their counts over each 2x2 block, in integers."""
    bands, h, w = source.shape
    values = source.astype(np.int64)
    if mask is None:
        total = values.reshape(bands, h // 2, 2, w // 2, 2).sum(axis=(2, 4))
        return total, np.full_like(total, 4)
    mask = np.broadcast_to(mask, source.shape)
    total = np.where(mask, values, 0).reshape(bands, h // 2, 2, w // 2, 2).sum(axis=(2, 4))
    count = mask.reshape(bands, h // 2, 2, w // 2, 2).sum(axis=(2, 4))
    return total, count


def _weighted_sums(source: np.ndarray, mask: np.ndarray | None, y_taps, x_taps) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted sums of valid values and of their weights, separably: columns first, then rows."""
    values = source.astype(np.float64)
    weights = np.ones((1,) + source.shape[1:]) if mask is None else np.broadcast_to(mask, source.shape).astype(np.float64)
    if mask is not None:
        values = np.where(np.broadcast_to(mask, source.shape), values, 0.0)
    out = []
    for plane in (values, weights):
        (xi, xw), (yi, yw) = x_taps, y_taps
        along_x = sum(plane[:, :, xi[k]] * xw[k] for k in range(len(xi)))
        out.append(sum(along_x[:, yi[k], :] * yw[k][:, None] for k in range(len(yi))))
    total, count = out
    return total, np.broadcast_to(count, total.shape)


def _to_dtype(mean: np.ndarray, valid: np.ndarray, validity: Validity) -> np.ndarray:
    """Means to the output type: clipped to its range, empty pixels filled, a valid mean off the nodata value."""
    dtype = np.dtype(validity.dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        mean = np.clip(mean, info.min, info.max)
    out = np.where(valid, mean, validity.empty).astype(dtype)
    replacement = validity.replacement()
    if replacement is not None:
        out[valid & (out == dtype.type(validity.nodata))] = replacement
    return out
