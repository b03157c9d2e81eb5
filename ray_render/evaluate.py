"""Evaluate a tool tree on one tile: arrays in, arrays out, no file access.

Sources and AOI masks are given by callables, so this module knows nothing of how pixels are read. Each
operation is a small function in `OPERATIONS`, keyed by the node's `type` (the same keys as
`models.tooltree.NODE_TYPES`); it asks the `Evaluator` for its children's stacks, so any node may combine
several inputs. A subtree that occurs twice (by its JSON) is evaluated once per tile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.tooltree import (
    BandMath,
    BandRef,
    Classify,
    ColorCorrect,
    Colormap,
    Identity,
    Leaf,
    Mask,
    MaskBy,
    NormalizedDifference,
    Output,
    SelectBands,
)
from models.tooltree.classes import COLORMAP_BANDS
from ray_render import algebra
from ray_render.classify import classify, colormap


@dataclass
class Stack:
    """Named bands of one tile: a masked array (bands, rows, cols); masked means nodata."""

    bands: list[str]
    data: np.ma.MaskedArray

    def band(self, name: str) -> np.ma.MaskedArray:
        return self.data[self.bands.index(name)]

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape[1:]


ReadSource = Callable[[Leaf], Stack]
AoiMask = Callable[[Mask], np.ndarray]  # True where a pixel is inside the AOI


class Evaluator:
    """Evaluates nodes for one tile, each distinct subtree once."""

    def __init__(self, read_source: ReadSource, aoi_mask: AoiMask, keys: dict[int, str] | None = None):
        self.read_source = read_source
        self.aoi_mask = aoi_mask
        self._keys = keys or {}
        self._done: dict[str, Stack] = {}

    def __call__(self, node) -> Stack:
        key = self._keys.get(id(node))
        if key is not None and key in self._done:
            return self._done[key]
        stack = self.read_source(node) if isinstance(node, Leaf) else OPERATIONS[node.type](node, self)
        if key is not None:
            self._done[key] = stack
        return stack


def _masked(values: np.ndarray, invalid: np.ndarray) -> np.ma.MaskedArray:
    return np.ma.masked_array(values, mask=invalid)


def _identity(node: Identity, ev: Evaluator) -> Stack:
    return ev(node.input)


def _select(node: SelectBands, ev: Evaluator) -> Stack:
    inp = ev(node.input)
    order = [inp.bands.index(b) for b in node.bands]
    return Stack(list(node.bands), inp.data[order])


def _color_correct(node: ColorCorrect, ev: Evaluator) -> Stack:
    inp = ev(node.input)
    stretch = {s.band: s for s in node.stretch}
    lo = np.array([stretch[b].min for b in inp.bands], dtype=np.float32)[:, None, None]
    hi = np.array([stretch[b].max for b in inp.bands], dtype=np.float32)[:, None, None]
    scaled = np.clip((inp.data.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
    if node.gamma != 1.0:
        scaled = scaled ** np.float32(1.0 / node.gamma)
    return Stack(inp.bands, scaled)


def _normalized_difference(node: NormalizedDifference, ev: Evaluator) -> Stack:
    inp = ev(node.input)
    a = inp.band(node.a).astype(np.float32)
    b = inp.band(node.b).astype(np.float32)
    total = a + b
    # Division by zero gives nodata: mask first, then divide only where it is defined.
    zero = np.ma.getmaskarray(total) | (np.ma.getdata(total) == 0)
    safe_total = np.where(zero, np.float32(1), np.ma.getdata(total))
    result = np.ma.masked_array((np.ma.getdata(a) - np.ma.getdata(b)) / safe_total, mask=zero | np.ma.getmaskarray(a - b))
    return Stack([node.name], result[None].astype(np.float32))


def _band_math(node: BandMath, ev: Evaluator) -> Stack:
    stacks = {name: ev(child) for name, child in node.named_inputs().items()}
    shape = next(iter(stacks.values())).shape

    def band(ref: BandRef) -> algebra.Value:
        values = stacks[node.resolve(ref)].band(ref.band)
        return np.ma.getdata(values).astype(np.float64), np.ma.getmaskarray(values)

    outputs = []
    for expr in node.expressions().values():
        values, invalid = algebra.evaluate_expression(expr, band)
        with np.errstate(over="ignore"):
            single = np.broadcast_to(values, shape).astype(np.float32)
        # Computed in float64, kept as float32: a value beyond float32's range has none (nodata rule 2).
        outputs.append(_masked(single, np.broadcast_to(invalid, shape) | ~np.isfinite(single)))
    return Stack(node.output_bands(), np.ma.stack(outputs))


def _one_band(stack: Stack) -> tuple[np.ndarray, np.ndarray]:
    band = stack.data[0]
    return np.ma.getdata(band).astype(np.float64), np.ma.getmaskarray(band)


def _classify(node: Classify, ev: Evaluator) -> Stack:
    values, invalid = classify(node, *_one_band(ev(node.input)))
    return Stack([node.name], _masked(values[None].astype(np.float32), invalid[None]))


def _colormap(node: Colormap, ev: Evaluator) -> Stack:
    # Transparency is in the alpha band, so every pixel of a colour map has a value.
    colours = colormap(node, *_one_band(ev(node.input)))
    return Stack(list(COLORMAP_BANDS), _masked(colours, np.zeros(colours.shape, dtype=bool)))


def _mask(node: Mask, ev: Evaluator) -> Stack:
    inp = ev(node.input)
    inside = ev.aoi_mask(node)
    drop = ~inside if node.keep == "inside" else inside
    return Stack(inp.bands, _masked(inp.data.data, np.ma.getmaskarray(inp.data) | drop[None]))


def _mask_by(node: MaskBy, ev: Evaluator) -> Stack:
    inp = ev(node.input)
    values, unknown = _one_band(ev(node.by))
    if node.remove_where is not None:
        hit, told = algebra.matches(node.remove_where, values)
        drop = hit
    else:
        hit, told = algebra.matches(node.keep_where, values)
        drop = ~hit
    # Where the mask band has no value (or cannot be read as bits), whether to keep the pixel is not known.
    drop = drop | unknown | ~told
    return Stack(inp.bands, _masked(inp.data.data, np.ma.getmaskarray(inp.data) | drop[None]))


def _output(node: Output, ev: Evaluator) -> Stack:
    return ev(node.input)


OPERATIONS: dict[str, Callable[[object, Evaluator], Stack]] = {
    "identity": _identity,
    "select": _select,
    "color_correct": _color_correct,
    "normalized_difference": _normalized_difference,
    "band_math": _band_math,
    "classify": _classify,
    "colormap": _colormap,
    "mask": _mask,
    "mask_by": _mask_by,
    "output": _output,
}


def evaluate(node, read_source: ReadSource, aoi_mask: AoiMask, keys: dict[int, str] | None = None) -> Stack:
    """The stack `node` produces for one tile; `keys` (node id -> canonical JSON) lets repeated subtrees share work."""
    return Evaluator(read_source, aoi_mask, keys)(node)


def to_output(node: Output, stack: Stack) -> np.ndarray:
    """Cast a stack to the output's dtype: value * scale + offset, rounded and clipped; masked -> nodata.

    For integer outputs a valid pixel that would equal the nodata value is nudged one step away from it,
    so that valid data never disappears as nodata.
    """
    dtype = np.dtype(node.dtype)
    values = np.ma.getdata(stack.data).astype(np.float64) * node.scale + node.offset
    mask = np.ma.getmaskarray(stack.data)
    nodata = node.nodata if node.nodata is not None else 0
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max)
        if node.nodata is not None:
            nudge = nodata + 1 if nodata < info.max else nodata - 1
            values[(values == nodata) & ~mask] = nudge
    out = values.astype(dtype)
    out[mask] = nodata
    return out
