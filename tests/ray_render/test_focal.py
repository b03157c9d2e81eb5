"""Focal statistics and dilation against a plain per-pixel reference: every neighbour listed, one by one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ray_render import focal as focal_module
from ray_render.focal import dilate, focal, offsets

REFERENCE = {
    "mean": np.mean, "sum": np.sum, "min": np.min, "max": np.max, "median": np.median,
    "std": np.std,  # population standard deviation
}


def reference_mode(values: list[float]) -> float:
    counts: dict[float, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    best = max(counts.values())
    return min(v for v, c in counts.items() if c == best)


def in_shape(dy: int, dx: int, radius: int, shape: str) -> bool:
    return shape == "square" or math.hypot(dy, dx) <= radius


def reference(stat, values, invalid, radius, shape):
    """The statistic at each interior pixel, neighbours gathered by a double loop."""
    rows, cols = values.shape[0] - 2 * radius, values.shape[1] - 2 * radius
    out = np.zeros((rows, cols))
    for r in range(rows):
        for c in range(cols):
            found = [values[r + radius + dy, c + radius + dx]
                     for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
                     if in_shape(dy, dx, radius, shape) and not invalid[r + radius + dy, c + radius + dx]]
            if found:
                out[r, c] = reference_mode(found) if stat == "mode" else REFERENCE[stat](found)
    return out


@pytest.fixture
def band():
    rng = np.random.default_rng(12)
    values = rng.normal(1000.0, 50.0, (23, 19))
    invalid = rng.random(values.shape) < 0.2
    invalid[:4, :6] = True  # a corner without data, like a scene's edge
    return values, invalid


@pytest.mark.parametrize("shape", ["square", "circle"])
@pytest.mark.parametrize("radius", [1, 3])
@pytest.mark.parametrize("stat", ["mean", "sum", "min", "max", "median", "std", "mode"])
def test_each_statistic_over_valid_neighbours(band, stat, radius, shape):
    values, invalid = band
    if stat == "mode":  # a mode needs repeated values: small integers, as a class map has
        values = np.round(values / 40.0)
    got, missing = focal(stat, values, invalid, radius, shape)
    inner = invalid[radius:-radius, radius:-radius]
    assert np.array_equal(missing, inner)  # nodata exactly where the centre is nodata
    expected = reference(stat, values, invalid, radius, shape)
    assert np.allclose(got[~inner], expected[~inner], rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("stat", ["median", "mode"])
def test_counting_and_sorting_agree_exactly(band, monkeypatch, stat):
    """Median and mode count occurrences when a tile has few distinct values and sort otherwise; a tile of
    either kind must give the same pixels, or an export would change with its tile size."""
    values, invalid = band
    values = np.round(values / 40.0)
    counted, _ = focal(stat, values, invalid, 2, "circle")
    monkeypatch.setattr(focal_module, "MAX_COUNTED_VALUES", 0)
    sorted_, _ = focal(stat, values, invalid, 2, "circle")
    keep = ~invalid[2:-2, 2:-2]
    assert np.array_equal(counted[keep], sorted_[keep])


def test_a_pixel_gets_the_same_value_in_any_window(band):
    """Sums run in a fixed order per pixel: a window cut elsewhere gives bit-identical results."""
    values, invalid = band
    whole, _ = focal("std", values, invalid, 3, "circle")
    part, _ = focal("std", values[5:20, 4:17], invalid[5:20, 4:17], 3, "circle")
    assert np.array_equal(part, whole[5:14, 4:11])


def test_a_circle_holds_the_offsets_within_its_radius():
    assert len(offsets("circle", 1)) == 5 and len(offsets("square", 1)) == 9
    assert len(offsets("circle", 2)) == 13 and (0, 2) in offsets("circle", 2) and (1, 2) not in offsets("circle", 2)


def test_dilate_marks_pixels_within_the_radius_of_a_hit():
    hit = np.zeros((15, 15), dtype=bool)
    hit[7, 7] = True
    grown = dilate(hit, 3)
    rows, cols = np.nonzero(grown)
    assert {(r - 4, c - 4) for r, c in zip(rows, cols, strict=True)} == set(offsets("circle", 3))
