"""Overview levels computed as GDAL computes them, one block at a time.

The COG's overviews are built from blocks of the level below, so tile actors can build them where the pixels
already are. To be interchangeable with GDAL's own (`gdaladdo`, the COG driver), each level follows GDAL's
rules exactly:

- Level sizes: each level halves the previous one, rounding down, until both sides fit in one block.
- Each level is computed from the one below it (not from full resolution), and pixels are rounded to the
  output type (half away from zero) before the next level reads them.
- AVERAGE is the area-weighted mean of the source pixels under each output pixel, ignoring invalid ones
  (nodata, NaN, or alpha 0 for every band of an RGBA output). When a side is odd (2T + 1 pixels to T), the
  ratio is a little over 2 and an output pixel straddles three source pixels on that axis with fractional
  weights; when it is even, it is the plain 2x2 mean (computed in integers). A valid mean that lands on the
  nodata value is nudged off it.
- NEAREST takes the source pixel at round(i * ratio).

Integer outputs are averaged exactly (integer weights: each times the level's side), and an exact half rounds
away from zero. GDAL sums in floats, which land a little either side of a half, so about 0.3 % of an odd-sided
level's pixels differ from GDAL's by 1 DN (never more). Exact sums are also about twice as fast as float ones.
Unsigned sources, the usual imagery, have sums of their own (`_unsigned_average`), which read each pair of
neighbouring pixels as one wider value: a 512 x 512 uint8 block reduces 2.2 to 3.3 times faster than with the
general sums, whether its sides are even or odd (measured on this machine kind, 2026-12-06).

Because the ratio drifts by less than one source pixel over a whole level, a block of level L reads the
blocks of level L-1 below it plus at most one pixel column and row of its right and lower neighbours.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ray_render.nodata import nodata_pixel

OVERVIEW_METHODS = ("average", "nearest")
# Output rows averaged at once. Every output pixel depends only on its own source pixels, so a block is averaged
# strip by strip with the same result; a strip's intermediate sums stay in the CPU's cache, where a whole block's
# (several MB of int32 or int64) do not: 1.5 to 2.5 times faster on this machine kind.
STRIP_ROWS = 64


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

    def taps(self, start: int, stop: int, scaled: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """For output pixels [start, stop): source indices (taps, n), relative to `span`'s lo, and their weights.

        With `scaled`, the average's weights are integers: each times `target`, so exact (an output pixel covers
        source pixels [i * source / target, (i + 1) * source / target)), and they sum to `source` per pixel.
        """
        lo, hi = self.span(start, stop)
        i = np.arange(start, stop)
        if self.method == "nearest":
            return (self._nearest(i) - lo)[None, :], np.ones((1, len(i)))
        first = i * self.source // self.target
        count = int((-(-(i + 1) * self.source // self.target) - first).max())
        index = first[None, :] + np.arange(count)[:, None]
        if scaled:
            left, right, unit = i * self.source, (i + 1) * self.source, self.target
        else:
            ratio = self.source / self.target
            left, right, unit = i * ratio, (i + 1) * ratio, 1
        weight = np.clip(np.minimum(right, (index + 1) * unit) - np.maximum(left, index * unit), 0, None)
        weight[index >= hi] = 0
        return np.minimum(index, hi - 1) - lo, weight

    def runs(self, start: int, stop: int, scaled: bool = False) -> list[tuple[int, int, int, np.ndarray]]:
        """The average's taps for output pixels [start, stop) as runs (t0, t1, c, weights): output pixel t (counted
        from `start`) of a run reads source pixels 2t + c + k (from `span`'s lo) with weights[k, t - t0].

        The ratio drifts by less than a pixel over a whole level, so a block has one or two runs, and each tap is a
        strided view of the source rather than a gather. Taps past the span have weight 0. `scaled`: integer
        weights (`taps`).
        """
        lo, _ = self.span(start, stop)
        _, weight = self.taps(start, stop, scaled)
        i = np.arange(start, stop)
        t = i - start
        offset = (i * self.source // self.target - lo) - 2 * t
        edges = [0, *np.flatnonzero(np.diff(offset)) + 1, len(t)]
        return [(a, b, int(offset[a]), weight[:, a:b]) for a, b in zip(edges, edges[1:], strict=False)]

    @property
    def scale(self) -> int:
        """What the integer weights of one output pixel sum to: 2 for a halving axis (a pair), else `source`."""
        return 2 if self.halves else self.source


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
        pixel = nodata_pixel(pixels.dtype, self.nodata)
        return None if pixel is None else pixels != pixel  # a value no pixel of the type holds masks none

    @property
    def invalid_are_zero(self) -> bool:
        """Whether every invalid pixel holds 0 already (integers with nodata 0), so sums need not clear them."""
        return not self.alpha and self.nodata == 0 and np.issubdtype(np.dtype(self.dtype), np.integer)

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
    if rows[1] - rows[0] <= STRIP_ROWS:
        return _average(source, y, x, rows, cols, validity)
    out = np.empty((source.shape[0], rows[1] - rows[0], cols[1] - cols[0]), dtype=np.dtype(validity.dtype))
    ylo, _ = y.span(*rows)
    for start in range(rows[0], rows[1], STRIP_ROWS):
        strip = (start, min(start + STRIP_ROWS, rows[1]))
        lo, hi = y.span(*strip)
        out[:, start - rows[0]:strip[1] - rows[0]] = _average(source[:, lo - ylo:hi - ylo], y, x, strip, cols, validity)
    return out


def _average(source: np.ndarray, y: Axis, x: Axis, rows: tuple[int, int], cols: tuple[int, int],
             validity: Validity) -> np.ndarray:
    """`reduce_block`'s average over a few rows."""
    mask = validity.mask(source)
    integer = np.issubdtype(source.dtype, np.integer)
    if _sums_fit_unsigned(source.dtype, y, x):
        return _unsigned_average(source, mask, y, x, rows, cols, validity)
    if y.halves and x.halves and integer:
        mean, valid = _mean_of_halves(source, mask)
    elif (wide := _exact_type(source.dtype, y, x)) is not None:
        total, count = _weighted_sums(source, mask, y, x, rows, cols, wide, validity.invalid_are_zero)
        mean, valid = _rounded_mean(total, count, signed=np.issubdtype(source.dtype, np.signedinteger))
    else:
        total, count = _weighted_sums(source, mask, y, x, rows, cols, np.float64, validity.invalid_are_zero)
        if np.issubdtype(np.dtype(validity.dtype), np.integer):
            mean, valid = _rounded_mean(total, count)
        else:
            valid = count > 0
            with np.errstate(divide="ignore", invalid="ignore"):
                mean = total / np.where(valid, count, 1)
    return _to_dtype(mean, valid, validity)


def _sums_fit_unsigned(dtype: np.dtype, y: Axis, x: Axis) -> bool:
    """Whether `_unsigned_average` takes this reduction: an unsigned source, each axis halving (2T pixels to T) or
    odd (2T + 1 to T: the only other case between levels), and sums held by an unsigned type."""
    if not np.issubdtype(dtype, np.unsignedinteger) or not all(a.halves or a.source == 2 * a.target + 1 for a in (y, x)):
        return False
    count = y.scale * x.scale
    return _unsigned_holding(_largest(dtype) * count + count // 2) is not None


def _unsigned_holding(bound: int) -> type | None:
    """The narrowest unsigned type that holds `bound` (None: none does)."""
    for wide in (np.uint16, np.uint32, np.uint64):
        if bound <= np.iinfo(wide).max:
            return wide
    return None


def _unsigned_average(source: np.ndarray, mask: np.ndarray | None, y: Axis, x: Axis, rows: tuple[int, int],
                      cols: tuple[int, int], validity: Validity) -> np.ndarray:
    """`_average` of an unsigned source (`_sums_fit_unsigned`), exactly, in unsigned integers.

    The same sums as `_weighted_sums`, arranged for speed: columns first, reading each pair of neighbouring pixels
    as one value of the type twice as wide (`_column_pairs`) rather than through two strided views (4.5 times faster
    for uint8 on this machine kind, 1.8 for uint16), then rows, whose views are whole rows. Where every pixel is valid, every
    output pixel's weights sum to the same number, and the mean is one integer division by it."""
    if mask is not None and mask.all():
        mask = None
    top = _largest(source.dtype)
    count = y.scale * x.scale
    if mask is None:
        # Typed to hold the sums plus half the count: rounded half away from zero (no sum is negative).
        total = _row_sums(_column_sums(source, x, cols, _unsigned_holding(top * x.scale)), y, rows,
                          _unsigned_holding(top * count + count // 2))
        total += total.dtype.type(count // 2)
        total //= total.dtype.type(count)
        out = total.astype(source.dtype)
        valid = None
    else:
        if mask.shape[0] > 1 and (mask == mask[:1]).all():
            mask = mask[:1]  # the same pixels missing in every band (the usual nodata): weigh them once
        values = source if validity.invalid_are_zero else np.where(mask, source, 0)
        total = _row_sums(_column_sums(values, x, cols, _unsigned_holding(top * x.scale)), y, rows,
                          _unsigned_holding(top * count))
        flags = mask.view(np.uint8)
        count = _row_sums(_column_sums(flags, x, cols, _unsigned_holding(x.scale)), y, rows, _unsigned_holding(count))
        mean, valid = _rounded_mean(total, count, signed=False)
        out = np.where(valid, mean, validity.empty).astype(source.dtype)
    replacement, nodata = validity.replacement(), nodata_pixel(source.dtype, validity.nodata)
    if replacement is not None and nodata is not None:
        hit = out == nodata
        if valid is not None:
            hit &= valid
        if hit.any():
            out[hit] = replacement
    return out


def _column_pairs(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For an unsigned plane (bands, rows, columns): the first pixel of each pair of columns (0 and 1, 2 and 3, ...)
    and each pair's sum, both in the type twice as wide. A pair is read as one value of that type, its halves split
    by a mask and a shift."""
    if plane.strides[2] != plane.itemsize:
        plane = np.ascontiguousarray(plane)
    pairs = plane[:, :, :plane.shape[2] // 2 * 2].view(f"u{2 * plane.itemsize}")
    bits = 8 * plane.itemsize
    low, high = pairs & pairs.dtype.type((1 << bits) - 1), pairs >> pairs.dtype.type(bits)
    first = low if sys.byteorder == "little" else high
    sums = low + high
    return first, sums


def _column_sums(plane: np.ndarray, x: Axis, cols: tuple[int, int], wide) -> np.ndarray:
    """The weighted sums over the columns of output pixels `cols` (x's integer weights) of an unsigned plane, in the
    unsigned type `wide`, which holds them (column pairs come in the type twice as wide as the plane's)."""
    first, sums = _column_pairs(plane)
    if x.halves:
        return sums
    return _odd_sums(sums, first, plane[:, :, -1:], x.target, cols, 2, wide)


def _row_sums(plane: np.ndarray, y: Axis, rows: tuple[int, int], wide) -> np.ndarray:
    """The weighted sums over the rows of output pixels `rows` (y's integer weights) of an unsigned plane, in the
    unsigned type `wide`, which holds them."""
    n = rows[1] - rows[0]
    a, b = plane[:, 0:2 * n:2], plane[:, 1:2 * n:2]
    total = np.add(a, b, dtype=wide)
    if y.halves:
        return total
    return _odd_sums(total, a, plane[:, 2 * n:], y.target, rows, 1, wide)


def _odd_sums(pairs: np.ndarray, firsts: np.ndarray, last: np.ndarray, target: int, span: tuple[int, int], axis: int,
              wide) -> np.ndarray:
    """The sums along `axis` of an odd-sided reduction (2T + 1 source pixels to T = `target`) for output pixels
    `span`, in the unsigned type `wide`, which holds them: from `pairs`, the sums of source pixels 2i and 2i + 1 (from
    the span's start), `firsts`, source pixels 2i, and `last`, the span's last source pixel (2n).

    Output pixel i (counted across the level) weighs pixels 2i, 2i + 1 and 2i + 2 by T - i, T and i + 1: T times the
    pair, plus (i + 1) e[i + 1] - i e[i] for the even pixels e, a difference of neighbours of k e[k]. That difference
    may be negative; in unsigned arithmetic it wraps, and the sum it is added to comes out right (modulo the type's
    range, which holds it)."""
    n = span[1] - span[0]
    shape = [1, 1, 1]
    shape[axis] = n + 1
    k = np.arange(span[0], span[1] + 1, dtype=wide).reshape(shape)
    weighted = np.empty([n + 1 if a == axis else size for a, size in enumerate(pairs.shape)], wide)
    head = [slice(None)] * 3
    head[axis] = slice(0, n)
    tail = list(head)
    tail[axis] = slice(n, n + 1)
    np.multiply(firsts, k[tuple(head)], out=weighted[tuple(head)])
    np.multiply(last, k[tuple(tail)], out=weighted[tuple(tail)])
    total = np.multiply(pairs, wide(target), dtype=wide)
    total += np.diff(weighted, axis=axis)
    return total


def _exact_type(dtype: np.dtype, y: Axis, x: Axis) -> type | None:
    """The integer type that holds the weighted sums of an integer source exactly (integer weights), or None
    (floats, or sums too large): int32 where it is enough, as it halves the memory the sums pass through."""
    if not np.issubdtype(dtype, np.integer):
        return None
    largest = _largest(dtype) * y.scale * x.scale
    for wide in (np.int32, np.int64):
        if largest <= np.iinfo(wide).max:
            return wide
    return None


def _rounded_mean(total: np.ndarray, count: np.ndarray, signed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Sums to means rounded half away from zero, and where any pixel was valid (`count` broadcasts to `total`:
    one plane for every band when they share their nodata). For exact integer sums the result is exact: their
    quotient is correctly rounded in float64, and a half is exact in it. Without `signed`, no sum is negative."""
    valid = count > 0
    mean = np.divide(total, np.where(valid, count, 1), dtype=np.float64)
    if not signed:  # in place: this runs on every pixel of an odd-sided level
        np.add(mean, 0.5, out=mean)
        return np.floor(mean, out=mean), valid
    rounded = np.floor(np.abs(mean) + 0.5)
    np.negative(rounded, out=rounded, where=mean < 0)
    return rounded, valid


def _mean_of_halves(source: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Means of valid values over each 2x2 block, rounded half away from zero, in integers; and where any is valid.

    The sums run on strided views (no reshaping copies), and the division only where a block is partly valid:
    a whole block's mean is a shift.
    """
    values = source.astype(np.int32 if source.dtype.itemsize <= 2 else np.int64)
    if mask is not None and not mask.all():
        np.multiply(values, mask, out=values)
        flags = np.ascontiguousarray(mask).view(np.uint8)
        count = flags[:, ::2, ::2] + flags[:, 1::2, ::2]
        count += flags[:, ::2, 1::2]
        count += flags[:, 1::2, 1::2]
    else:
        count = None
    total = values[:, ::2, ::2] + values[:, 1::2, ::2]
    total += values[:, ::2, 1::2]
    total += values[:, 1::2, 1::2]
    signed = np.issubdtype(source.dtype, np.signedinteger)
    magnitude = np.abs(total) if signed else total
    mean = (magnitude + 2) >> 2
    if count is None:
        valid = np.ones(mean.shape, dtype=bool)
    else:
        count = np.broadcast_to(count, mean.shape)
        valid = count > 0
        partial = valid & (count < 4)
        if partial.any():
            mean[partial] = (2 * magnitude[partial] + count[partial]) // (2 * count[partial])
    if signed:
        np.negative(mean, out=mean, where=total < 0)
    return mean, valid


def _weighted_sums(source: np.ndarray, mask: np.ndarray | None, y: Axis, x: Axis, rows, cols, wide,
                   invalid_are_zero: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted sums of valid values and of their weights, separably: in integers, with each axis's weights
    scaled to integers (`Axis.taps`), when `wide` is an integer type (that of the final sums), else in float64
    with the plain ones. An axis whose side is even is summed in pairs first, so that only the odd axis needs
    weights. The weights' sums broadcast to the values' sums: one plane when every band has the same pixels.

    Each step runs in the narrowest type that holds its sums (`_holding`): at the second level of an image with
    both sides odd, the first axis's sums fit int32 though the final ones need int64, and int32 passes move half
    the memory. `invalid_are_zero`: invalid pixels hold 0 already (nodata 0), so they need no clearing."""
    if mask is not None and mask.all():
        mask = None
    if mask is not None and mask.shape[0] > 1 and (mask == mask[:1]).all():
        mask = mask[:1]  # the same pixels missing in every band (the usual nodata): weigh them once
    scaled = np.issubdtype(wide, np.integer)
    bound = _largest(source.dtype) if scaled else None
    weights = 1
    cleared = source if mask is None or invalid_are_zero else np.where(mask, source, 0)
    values = cleared.astype(_holding(bound, 2, wide))  # the filters below widen it as they need
    flags = None if mask is None else mask.astype(np.int32 if scaled else wide)
    sizes = {1: rows[1] - rows[0], 2: cols[1] - cols[0]}
    steps = []
    for axis, along in ((2, x), (1, y)):
        if along.halves:
            values = _pairs(values, axis)
            flags = None if flags is None else _pairs(flags, axis)
            weights *= 2
        else:
            steps.append((axis, along.runs(*(cols if axis == 2 else rows), scaled), along.scale))
    total, count = values, flags
    for axis, runs, scale in steps:
        weights *= scale
        total = _filter(total.astype(_holding(bound, weights, wide), copy=False), axis, runs, sizes[axis])
        if count is not None:
            count = _filter(count.astype(_holding(1 if scaled else None, weights, wide), copy=False), axis, runs, sizes[axis])
    if count is None:  # every pixel valid: the weights' sums, the same for every band
        per_axis = {axis: _weight_sums(runs) for axis, runs, _ in steps}
        count = np.outer(per_axis.get(1, np.full(sizes[1], 2)), per_axis.get(2, np.full(sizes[2], 2)))[None]
    return total, count


def _largest(dtype: np.dtype) -> int:
    """The largest magnitude of an integer type."""
    info = np.iinfo(dtype)
    return max(abs(int(info.min)), int(info.max))


def _holding(bound: int | None, weights: int, wide):
    """The type for sums of values up to `bound` under integer weights summing to `weights`: int32 when it holds
    them, else `wide` (also for float sums, `bound` None)."""
    if bound is not None and bound * weights <= np.iinfo(np.int32).max:
        return np.int32
    return wide


def _pairs(plane: np.ndarray, axis: int) -> np.ndarray:
    """Sums of neighbouring pairs along `axis` (1: rows, 2: columns) of an even-sized plane."""
    return plane[:, :, 0::2] + plane[:, :, 1::2] if axis == 2 else plane[:, 0::2, :] + plane[:, 1::2, :]


def _filter(plane: np.ndarray, axis: int, runs, size: int) -> np.ndarray:
    """Apply one axis's taps (`Axis.runs`) to `plane` along `axis` (1: rows, 2: columns), in its own type.

    A tap that would read past the plane's end has weight 0 there, so its view is simply shorter."""
    shape = list(plane.shape)
    shape[axis] = size
    out = np.zeros(shape, dtype=plane.dtype)
    for t0, t1, offset, weights in runs:
        n = t1 - t0
        for k, weight in enumerate(weights):
            first = 2 * t0 + offset + k
            weight = weight.astype(plane.dtype, copy=False)
            if axis == 2:
                view = plane[:, :, first:first + 2 * n:2]
                m = view.shape[2]
                out[:, :, t0:t0 + m] += view * weight[:m]
            else:
                view = plane[:, first:first + 2 * n:2, :]
                m = view.shape[1]
                out[:, t0:t0 + m, :] += view * weight[:m, None]
    return out


def _weight_sums(runs) -> np.ndarray:
    return np.concatenate([weights.sum(axis=0) for _, _, _, weights in runs])


def _to_dtype(mean: np.ndarray, valid: np.ndarray, validity: Validity) -> np.ndarray:
    """Means to the output type: empty pixels filled, a valid mean off the nodata value."""
    dtype = np.dtype(validity.dtype)
    # No clipping: a rounded mean of values of a type lies within its range.
    out = np.where(valid, mean, validity.empty).astype(dtype)
    replacement = validity.replacement()
    if replacement is not None:
        out[valid & (out == dtype.type(validity.nodata))] = replacement
    return out
