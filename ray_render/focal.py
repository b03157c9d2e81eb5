"""Focal statistics over valid neighbours, exact and the same whatever the tile.

Every function takes a band with a halo of `radius` pixels on each side (values and an invalid mask) and
returns the band without it. Why the results do not depend on the tile: each pixel's result is computed
from its own neighbours by the same sequence of floating-point operations wherever the tile starts. Sums run
over the neighbourhood's offsets in a fixed order (rows of the shape, then the rows added together), never
as running sums along a tile (whose rounding would depend on where the tile begins). Minimum, maximum,
median and mode are exact whatever the order.

A neighbourhood is a square (every offset within `radius` in both directions) or a circle (offsets whose
distance from the centre is at most `radius`). Both are unions of horizontal runs, one per row offset, which is
what makes the sums and extremes separable: a pass along rows, then one along columns.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np

# Above this many distinct values in a tile, median and mode sort each neighbourhood instead of counting
# each value's occurrences (counting is exact and much faster for class maps and small integers).
MAX_COUNTED_VALUES = 32
# Neighbourhood values gathered at once when sorting (bounds the memory of median and mode to ~256 MB).
GATHER_LIMIT = 32_000_000


def half_widths(shape: str, radius: int) -> dict[int, int]:
    """For each row offset -radius..radius, how far the neighbourhood reaches left and right on that row."""
    if shape == "square":
        return {dy: radius for dy in range(-radius, radius + 1)}
    return {dy: math.isqrt(radius * radius - dy * dy) for dy in range(-radius, radius + 1)}


def offsets(shape: str, radius: int) -> list[tuple[int, int]]:
    """Every (row, column) offset of the neighbourhood, row by row."""
    return [(dy, dx) for dy, w in half_widths(shape, radius).items() for dx in range(-w, w + 1)]


def _separable(values: np.ndarray, radius: int, shape: str, combine: Callable, start) -> np.ndarray:
    """Combine each pixel's neighbourhood with `combine` (an exact or fixed-order reduction): runs of each
    half-width along rows, widened step by step, then the rows of the shape added in a fixed order."""
    rows, cols = values.shape[0] - 2 * radius, values.shape[1] - 2 * radius
    widths = half_widths(shape, radius)
    result = np.full((rows, cols), start, dtype=values.dtype)
    run = values[:, radius:radius + cols].copy()  # half-width 0: each pixel itself
    for width in range(radius + 1):
        if width > 0:
            run = combine(combine(run, values[:, radius - width:radius - width + cols]),
                          values[:, radius + width:radius + width + cols])
        for dy in (dy for dy, w in widths.items() if w == width):
            result = combine(result, run[radius + dy:radius + dy + rows])
    return result


def _centre(values: np.ndarray, radius: int) -> np.ndarray:
    return values[radius:values.shape[0] - radius, radius:values.shape[1] - radius]


def _counts(invalid: np.ndarray, radius: int, shape: str) -> np.ndarray:
    return _separable((~invalid).astype(np.int32), radius, shape, np.add, 0)


def focal_sum(values, invalid, radius, shape):
    return _separable(np.where(invalid, 0.0, values), radius, shape, np.add, 0.0)


def focal_mean(values, invalid, radius, shape):
    return focal_sum(values, invalid, radius, shape) / np.maximum(_counts(invalid, radius, shape), 1)


def focal_std(values, invalid, radius, shape):
    count = np.maximum(_counts(invalid, radius, shape), 1)
    mean = focal_sum(values, invalid, radius, shape) / count
    squares = _separable(np.where(invalid, 0.0, values * values), radius, shape, np.add, 0.0)
    return np.sqrt(np.maximum(squares / count - mean * mean, 0.0))


def focal_min(values, invalid, radius, shape):
    return _separable(np.where(invalid, np.inf, values), radius, shape, np.minimum, np.inf)


def focal_max(values, invalid, radius, shape):
    return _separable(np.where(invalid, -np.inf, values), radius, shape, np.maximum, -np.inf)


def _gathered(values, invalid, radius, shape, reduce):
    """`reduce(stack)` over each pixel's neighbourhood values (NaN where invalid), a band of rows at a time."""
    rows, cols = values.shape[0] - 2 * radius, values.shape[1] - 2 * radius
    steps = offsets(shape, radius)
    data = np.where(invalid, np.nan, values)
    out = np.empty((rows, cols), dtype=np.float64)
    step = max(1, GATHER_LIMIT // (len(steps) * max(cols, 1)))
    for top in range(0, rows, step):
        n = min(step, rows - top)
        stack = np.stack([data[radius + top + dy:radius + top + dy + n, radius + dx:radius + dx + cols]
                          for dy, dx in steps])
        out[top:top + n] = reduce(stack)
    return out


def _counted_or_sorted(values, invalid, radius, shape, from_counts: Callable, from_stack: Callable) -> np.ndarray:
    """A statistic of order (median, mode) over each neighbourhood. With few distinct values in the tile it is
    `from_counts(distinct values ascending, occurrences of each per neighbourhood)`, one counting pass per value;
    otherwise `from_stack(neighbourhood values, NaN where invalid)`. Both give the same pixels."""
    distinct = np.unique(values[~invalid])
    if len(distinct) > MAX_COUNTED_VALUES:
        return _gathered(values, invalid, radius, shape, from_stack)
    if len(distinct) == 0:
        return np.zeros(_centre(values, radius).shape)
    counts = np.stack([_separable(((values == v) & ~invalid).astype(np.int32), radius, shape, np.add, 0)
                       for v in distinct])
    return from_counts(distinct, counts)


def _median_of_counts(distinct: np.ndarray, counts: np.ndarray) -> np.ndarray:
    below = np.cumsum(counts, axis=0)  # neighbours at or below each distinct value
    total = below[-1]

    def ranked(rank):  # the value at 1-based `rank` in sorted order
        return distinct[np.argmax(below >= rank[None], axis=0)]

    return (ranked((total + 1) // 2) + ranked(total // 2 + 1)) / 2


def _median_of_stack(stack: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # pixels without a valid neighbour are nodata anyway (their centre is)
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(stack, axis=0)


def _mode_of_counts(distinct: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return distinct[np.argmax(counts, axis=0)]  # argmax takes the first, smallest, of equal counts


def _mode_of_stack(stack: np.ndarray) -> np.ndarray:
    ordered = np.sort(stack, axis=0)  # NaN (invalid) last
    best, best_count = ordered[0].copy(), np.ones(ordered.shape[1:], dtype=np.int32)
    run = np.ones(ordered.shape[1:], dtype=np.int32)
    for i in range(1, len(ordered)):
        run = np.where(ordered[i] == ordered[i - 1], run + 1, 1)
        better = run > best_count  # strictly more: a tie keeps the smaller value, reached first
        best = np.where(better, ordered[i], best)
        best_count = np.where(better, run, best_count)
    return best


def focal_median(values, invalid, radius, shape):
    """The median of the valid neighbours; of an even number, the mean of the middle two (as numpy's)."""
    return _counted_or_sorted(values, invalid, radius, shape, _median_of_counts, _median_of_stack)


def focal_mode(values, invalid, radius, shape):
    """The most frequent valid neighbour value; a tie goes to the smallest."""
    return _counted_or_sorted(values, invalid, radius, shape, _mode_of_counts, _mode_of_stack)


FOCAL_FUNCTIONS: dict[str, Callable] = {
    "mean": focal_mean,
    "median": focal_median,
    "min": focal_min,
    "max": focal_max,
    "sum": focal_sum,
    "std": focal_std,
    "mode": focal_mode,
}


def focal(stat: str, values: np.ndarray, invalid: np.ndarray, radius: int, shape: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, invalid) of `stat` over each pixel's neighbourhood; `values` carries `radius` pixels of halo on
    each side and the result does not. Nodata where the centre is nodata."""
    result = FOCAL_FUNCTIONS[stat](values.astype(np.float64), invalid, radius, shape)
    return result, _centre(invalid, radius).copy()


def dilate(hit: np.ndarray, radius: int) -> np.ndarray:
    """Whether any pixel within `radius` (a circle) is set; `hit` carries `radius` pixels of halo."""
    if radius == 0:
        return hit.copy()
    return _separable(hit, radius, "circle", np.logical_or, False)
