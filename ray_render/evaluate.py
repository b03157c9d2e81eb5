"""Evaluate a tool tree on one tile: arrays in, arrays out, no file access.

Sources and AOI masks are given by callables, so this module knows nothing of how pixels are read.
Each operation is a small function in `OPERATIONS`, keyed by the node's `type`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.tooltree import (
    BandMath,
    BandRef,
    ColorCorrect,
    Constant,
    Identity,
    Mask,
    NormalizedDifference,
    Output,
    ProjectSource,
    SelectBands,
)


@dataclass
class Stack:
    """Named bands of one tile: a masked array (bands, rows, cols); masked means nodata."""

    bands: list[str]
    data: np.ma.MaskedArray

    def band(self, name: str) -> np.ma.MaskedArray:
        return self.data[self.bands.index(name)]


ReadSource = Callable[[ProjectSource], Stack]
AoiMask = Callable[[Mask], np.ndarray]  # True where a pixel is inside the AOI


def _identity(node: Identity, inp: Stack) -> Stack:
    return inp


def _select(node: SelectBands, inp: Stack) -> Stack:
    order = [inp.bands.index(b) for b in node.bands]
    return Stack(list(node.bands), inp.data[order])


def _color_correct(node: ColorCorrect, inp: Stack) -> Stack:
    stretch = {s.band: s for s in node.stretch}
    lo = np.array([stretch[b].min for b in inp.bands], dtype=np.float32)[:, None, None]
    hi = np.array([stretch[b].max for b in inp.bands], dtype=np.float32)[:, None, None]
    scaled = np.clip((inp.data.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
    if node.gamma != 1.0:
        scaled = scaled ** np.float32(1.0 / node.gamma)
    return Stack(inp.bands, scaled)


def _normalized_difference(node: NormalizedDifference, inp: Stack) -> Stack:
    a = inp.band(node.a).astype(np.float32)
    b = inp.band(node.b).astype(np.float32)
    total = a + b
    # Division by zero gives nodata: mask first, then divide only where it is defined.
    zero = np.ma.getmaskarray(total) | (np.ma.getdata(total) == 0)
    safe_total = np.where(zero, np.float32(1), np.ma.getdata(total))
    result = np.ma.masked_array((np.ma.getdata(a) - np.ma.getdata(b)) / safe_total, mask=zero | np.ma.getmaskarray(a - b))
    return Stack([node.name], result[None].astype(np.float32))


_ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply}


def _expression(expr, inp: Stack, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(values, invalid) of an expression over a tile, in float32."""
    if isinstance(expr, BandRef):
        band = inp.band(expr.band)
        return np.ma.getdata(band).astype(np.float32), np.ma.getmaskarray(band)
    if isinstance(expr, Constant):
        return np.full(shape, expr.const, dtype=np.float32), np.zeros(shape, dtype=bool)
    (a, bad_a), (b, bad_b) = (_expression(arg, inp, shape) for arg in expr.args)
    invalid = bad_a | bad_b
    if expr.op == "/":
        zero = b == 0
        return np.divide(a, np.where(zero, np.float32(1), b)), invalid | zero
    return _ARITHMETIC[expr.op](a, b), invalid


def _band_math(node: BandMath, inp: Stack) -> Stack:
    with np.errstate(over="ignore", invalid="ignore"):
        values, invalid = _expression(node.expr, inp, inp.data.shape[1:])
    invalid = invalid | ~np.isfinite(values)
    return Stack([node.name], np.ma.masked_array(values[None].astype(np.float32), mask=invalid[None]))


OPERATIONS: dict[str, Callable] = {
    "identity": _identity,
    "select": _select,
    "color_correct": _color_correct,
    "normalized_difference": _normalized_difference,
    "band_math": _band_math,
}


def evaluate(node, read_source: ReadSource, aoi_mask: AoiMask) -> Stack:
    """The stack `node` produces for one tile."""
    if isinstance(node, ProjectSource):
        return read_source(node)
    inp = evaluate(node.input, read_source, aoi_mask)
    if isinstance(node, Mask):
        outside = ~aoi_mask(node)
        return Stack(inp.bands, np.ma.masked_array(inp.data, mask=np.ma.getmaskarray(inp.data) | outside[None]))
    if isinstance(node, Output):
        return inp
    return OPERATIONS[node.type](node, inp)


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
