"""Evaluate a tool tree on one tile: arrays in, arrays out, no file access.

Sources and AOI masks are given by callables, so this module knows nothing of how pixels are read. Each
operation is a small function in `OPERATIONS`, keyed by the node's `type` (the same keys as
`models.tooltree.NODE_TYPES`); it asks the `Evaluator` for its children's stacks, so any node may combine
several inputs. A subtree that occurs twice (by its JSON) is evaluated once per tile.

Neighbourhood operations (focal, terrain, mask_by's dilation) need their input beyond the tile. Each node is
evaluated over the tile grown by its margin (`models.tooltree.margins`: the reaches of the nodes above it
added up), so a focal node of radius r gets its input with r more pixels on each side than it gives out.
Leaves read, and AOI masks rasterise, the grown window; pixels are cropped to each reader's margin.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from models.tooltree import (
    BandMath,
    BandRef,
    Classify,
    ColorCorrect,
    Colormap,
    Focal,
    Identity,
    Leaf,
    Mask,
    MaskBy,
    NormalizedDifference,
    Output,
    SelectBands,
    Terrain,
    margins,
)
from models.tooltree.classes import COLORMAP_BANDS
from ray_render import algebra
from ray_render.classify import classify, colormap
from ray_render.focal import dilate, focal
from ray_render.grid import OutputGrid
from ray_render.nodata import nodata_pixel
from ray_render.terrain import cell_sizes, terrain


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


ReadSource = Callable[[Leaf, Window], Stack]
AoiMask = Callable[[Mask, Window], np.ndarray]  # True where a pixel is inside the AOI


def grown(window: Window, margin: int) -> Window:
    """`window` with `margin` more pixels on every side."""
    return Window(window.col_off - margin, window.row_off - margin, window.width + 2 * margin,
                  window.height + 2 * margin)


class Evaluator:
    """Evaluates the nodes of one tree for one tile (`window` of `grid`), each distinct subtree once, each over
    the tile grown by its margin."""

    def __init__(self, read_source: ReadSource, aoi_mask: AoiMask, window: Window, grid: OutputGrid | None = None,
                 keys: dict[int, str] | None = None, node_margins: dict[str, int] | None = None):
        self.read_source = read_source
        self.aoi_mask = aoi_mask
        self.window = window
        self.grid = grid
        self._keys = keys or {}
        self._margins = node_margins or {}
        self._done: dict[str, tuple[int, Stack]] = {}

    def margin(self, node) -> int:
        return self._margins.get(self._keys.get(id(node)), 0)

    def stack(self, node) -> tuple[int, Stack]:
        """(margin, stack) of `node` over the tile grown by its margin."""
        key = self._keys.get(id(node))
        if key is not None and key in self._done:
            return self._done[key]
        margin = self.margin(node)
        if isinstance(node, Leaf):
            stack = self.read_source(node, grown(self.window, margin))
        else:
            stack = OPERATIONS[node.type](node, At(self, margin))
        if key is not None:
            self._done[key] = (margin, stack)
        return margin, stack


class At:
    """What an operation sees: its children's stacks over the tile grown by the operation's own margin (plus
    the reach it asks for), and the AOI masks over that window."""

    def __init__(self, evaluator: Evaluator, margin: int):
        self.evaluator = evaluator
        self.margin = margin

    @property
    def window(self) -> Window:
        return grown(self.evaluator.window, self.margin)

    def __call__(self, child, reach: int = 0) -> Stack:
        """`child`'s stack with `reach` pixels beyond this operation's window on every side."""
        have, stack = self.evaluator.stack(child)
        trim = have - self.margin - reach
        if trim < 0:
            raise AssertionError(f"{child.type} was evaluated with a margin of {have}, {-trim} short")  # a bug
        if trim == 0:
            return stack
        return Stack(stack.bands, stack.data[:, trim:stack.data.shape[1] - trim, trim:stack.data.shape[2] - trim])

    def aoi_mask(self, node: Mask) -> np.ndarray:
        return self.evaluator.aoi_mask(node, self.window)


def _masked(values: np.ndarray, invalid: np.ndarray) -> np.ma.MaskedArray:
    return np.ma.masked_array(values, mask=invalid)


def _identity(node: Identity, ev: At) -> Stack:
    return ev(node.input)


def _select(node: SelectBands, ev: At) -> Stack:
    inp = ev(node.input)
    order = [inp.bands.index(b) for b in node.bands]
    return Stack(list(node.bands), inp.data[order])


def _color_correct(node: ColorCorrect, ev: At) -> Stack:
    inp = ev(node.input)
    stretch = {s.band: s for s in node.stretch}
    lo = np.array([stretch[b].min for b in inp.bands], dtype=np.float32)[:, None, None]
    hi = np.array([stretch[b].max for b in inp.bands], dtype=np.float32)[:, None, None]
    scaled = np.clip((inp.data.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
    if node.gamma != 1.0:
        scaled = scaled ** np.float32(1.0 / node.gamma)
    return Stack(inp.bands, scaled)


def _normalized_difference(node: NormalizedDifference, ev: At) -> Stack:
    inp = ev(node.input)
    a = inp.band(node.a).astype(np.float32)
    b = inp.band(node.b).astype(np.float32)
    total = a + b
    # Division by zero gives nodata: mask first, then divide only where it is defined.
    zero = np.ma.getmaskarray(total) | (np.ma.getdata(total) == 0)
    safe_total = np.where(zero, np.float32(1), np.ma.getdata(total))
    result = np.ma.masked_array((np.ma.getdata(a) - np.ma.getdata(b)) / safe_total, mask=zero | np.ma.getmaskarray(a - b))
    return Stack([node.name], result[None].astype(np.float32))


def _band_math(node: BandMath, ev: At) -> Stack:
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


def _classify(node: Classify, ev: At) -> Stack:
    values, invalid = classify(node, *_one_band(ev(node.input)))
    return Stack([node.name], _masked(values[None].astype(np.float32), invalid[None]))


def _colormap(node: Colormap, ev: At) -> Stack:
    # Transparency is in the alpha band, so every pixel of a colour map has a value.
    colours = colormap(node, *_one_band(ev(node.input)))
    return Stack(list(COLORMAP_BANDS), _masked(colours, np.zeros(colours.shape, dtype=bool)))


def _mask(node: Mask, ev: At) -> Stack:
    inp = ev(node.input)
    inside = ev.aoi_mask(node)
    drop = ~inside if node.keep == "inside" else inside
    return Stack(inp.bands, _masked(inp.data.data, np.ma.getmaskarray(inp.data) | drop[None]))


def _mask_by(node: MaskBy, ev: At) -> Stack:
    inp = ev(node.input)
    values, unknown = _one_band(ev(node.by, node.dilate))
    if node.remove_where is not None:
        hit, told = algebra.matches(node.remove_where, values)
        drop = hit
    else:
        hit, told = algebra.matches(node.keep_where, values)
        drop = ~hit
    # Only pixels that match spread (a buffer around clouds); a pixel the mask band says nothing of does not.
    drop = dilate(drop & ~unknown & told, node.dilate)
    inner = slice(node.dilate, unknown.shape[0] - node.dilate), slice(node.dilate, unknown.shape[1] - node.dilate)
    # Where the mask band has no value (or cannot be read as bits), whether to keep the pixel is not known.
    drop = drop | unknown[inner] | ~told[inner]
    return Stack(inp.bands, _masked(inp.data.data, np.ma.getmaskarray(inp.data) | drop[None]))


def _focal(node: Focal, ev: At) -> Stack:
    inp = ev(node.input, node.radius)
    bands = [focal(node.stat, *_masked_parts(band), node.radius, node.shape) for band in inp.data]
    values = np.stack([v for v, _ in bands]).astype(np.float32)
    return Stack(inp.bands, _masked(values, np.stack([m for _, m in bands])))


def _terrain(node: Terrain, ev: At) -> Stack:
    elevation, invalid = _one_band(ev(node.input, 1))
    window = ev.window
    grid = ev.evaluator.grid
    dx, dy = cell_sizes(grid.crs, grid.transform, int(window.row_off), int(window.height))
    values, missing = terrain(node, elevation, invalid, dx, dy)
    return Stack(node.output_bands(), _masked(values[None].astype(np.float32), missing[None]))


def _masked_parts(band: np.ma.MaskedArray) -> tuple[np.ndarray, np.ndarray]:
    return np.ma.getdata(band), np.ma.getmaskarray(band)


def _output(node: Output, ev: At) -> Stack:
    return ev(node.input)


OPERATIONS: dict[str, Callable[[object, Evaluator], Stack]] = {
    "identity": _identity,
    "select": _select,
    "color_correct": _color_correct,
    "normalized_difference": _normalized_difference,
    "band_math": _band_math,
    "classify": _classify,
    "colormap": _colormap,
    "focal": _focal,
    "terrain": _terrain,
    "mask": _mask,
    "mask_by": _mask_by,
    "output": _output,
}


def node_keys(root) -> dict[int, str]:
    """Each node's canonical JSON, by the node's id: equal subtrees (two leaves over one project, say) share
    their readers and are evaluated once per tile."""
    return {id(node): json.dumps(node.model_dump(mode="json"), sort_keys=True) for node in root.walk()}


def node_margins(root, keys: dict[int, str]) -> dict[str, int]:
    """Each distinct subtree's margin (by its key): the largest it is needed with anywhere in the tree."""
    found: dict[str, int] = {}
    for node_id, margin in margins(root).items():
        found[keys[node_id]] = max(found.get(keys[node_id], 0), margin)
    return found


def evaluate(node, read_source: ReadSource, aoi_mask: AoiMask, window: Window, grid: OutputGrid | None = None,
             keys: dict[int, str] | None = None) -> Stack:
    """The stack `node` produces over `window` of `grid`. `keys` (node id -> canonical JSON) lets repeated
    subtrees share work; it is computed when not given."""
    keys = keys or node_keys(node)
    evaluator = Evaluator(read_source, aoi_mask, window, grid, keys, node_margins(node, keys))
    return evaluator.stack(node)[1]


def to_output(node: Output, stack: Stack) -> np.ndarray:
    """Cast a stack to the output's dtype: value * scale + offset, rounded and clipped; masked -> nodata.

    For integer outputs a valid pixel that would equal the nodata value is nudged one step away from it,
    so that valid data never disappears as nodata.
    """
    dtype = np.dtype(node.dtype)
    data = np.ma.getdata(stack.data)
    mask = np.ma.getmaskarray(stack.data)
    nodata = node.nodata if node.nodata is not None else 0
    if _casts_exactly(data.dtype, dtype, node.scale, node.offset):
        # Integers into a type that holds them all, unscaled (a plain mosaic's uint8 or uint16): nothing to round
        # or clip, so skip the float round trip, a third of a plain mosaic's tile time.
        out = data.astype(dtype)
        np.copyto(out, nodata, where=mask, casting="unsafe")  # faster than assigning through a boolean index
        pixel = nodata_pixel(dtype, nodata)  # typed like the pixels: a float would cast every pixel to compare
        if node.nodata is not None and pixel is not None:
            # Every masked pixel holds nodata now, so a valid one holds it too only if more pixels hold it than are
            # masked: two counts instead of a mask of clashes built for every tile (rarely needed).
            holding = out == pixel
            if np.count_nonzero(holding) > np.count_nonzero(mask):
                info = np.iinfo(dtype)
                np.copyto(out, pixel + 1 if nodata < info.max else pixel - 1, where=holding & ~mask)
        return out
    values = data.astype(np.float64) * node.scale + node.offset
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max)
        if node.nodata is not None:
            nudge = nodata + 1 if nodata < info.max else nodata - 1
            values[(values == nodata) & ~mask] = nudge
    out = values.astype(dtype)
    out[mask] = nodata
    return out


def _casts_exactly(source: np.dtype, target: np.dtype, scale: float, offset: float) -> bool:
    """Whether every value of `source` is a value of `target` as it is (integers, no scale or offset)."""
    return (scale == 1 and offset == 0 and np.issubdtype(source, np.integer) and np.issubdtype(target, np.integer)
            and np.can_cast(source, target, casting="safe"))
