"""Classes and colour on arrays: `classify` (rules or an exact remap) and `colormap` (ramps or classes to RGBA)."""

from __future__ import annotations

import numpy as np

from models.tooltree import Classify, Colormap, named_ramp_stops, rgba


def classify(node: Classify, x: np.ndarray, invalid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class values, invalid): the first rule that matches (min inclusive, max exclusive) or the exact remap;
    unmatched values take `default`, or no value when it is null."""
    out = np.full(x.shape, node.default if node.default is not None else 0.0, dtype=np.float64)
    assigned = np.zeros(x.shape, dtype=bool)
    if node.rules is not None:
        for rule in node.rules:
            hit = ~assigned
            if rule.min is not None:
                hit &= x >= rule.min
            if rule.max is not None:
                hit &= x < rule.max
            out[hit] = rule.value
            assigned |= hit
    else:
        for key, value in node.remap.items():
            hit = ~assigned & (x == int(key))
            out[hit] = value
            assigned |= hit
    unmatched = ~assigned if node.default is None else np.zeros(x.shape, dtype=bool)
    return out, invalid | unmatched


def colormap(node: Colormap, x: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """(4, rows, cols) red, green, blue, alpha values in 0-255; pixels with no value are (0, 0, 0, 0)."""
    rows, cols = x.shape
    out = np.zeros((4, rows, cols), dtype=np.float32)
    if node.classes is not None:
        fill = rgba(node.default) if node.default is not None else (0, 0, 0, 0)
        out[:] = np.asarray(fill, dtype=np.float32)[:, None, None]
        for key, colour in node.classes.items():
            hit = x == float(key)
            out[:, hit] = np.asarray(rgba(colour), dtype=np.float32)[:, None]
    else:
        stops = named_ramp_stops(node.ramp, *node.range) if isinstance(node.ramp, str) else node.ramp
        values = np.array([v for v, _ in stops], dtype=np.float64)
        colours = np.array([rgba(c) for _, c in stops], dtype=np.float64)
        for channel in range(4):
            # np.interp clamps beyond the end stops, as a ramp should.
            out[channel] = np.rint(np.interp(x, values, colours[:, channel]))
    out[:, invalid] = 0
    return out
