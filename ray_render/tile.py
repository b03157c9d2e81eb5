"""Render one output tile: read every overlapping scene of each leaf, mosaic, evaluate the tree, cast to output.

`TileRenderer` is plain Python (tested without Ray); `ray_render.actors` wraps it in a Ray actor. A tree with
neighbourhood operations reads each tile with a halo (`ToolTree.halo`), choosing scenes by the grown tile.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import ExitStack

import numpy as np
from rasterio.enums import Resampling
from rasterio.windows import Window

from models.tooltree import Leaf, Mask, ToolTree, parse_tool_tree
from ray_render.aoi import AoiRasterizer
from ray_render.evaluate import Evaluator, Stack, node_keys, node_margins, to_output
from ray_render.grid import OutputGrid
from ray_render.mosaic import MOSAIC_METHODS
from ray_render.reader import DEFAULT_ERROR_THRESHOLD, WARP_BLOCK, SceneReader, block_spans


def _physical(data: np.ndarray, bands) -> np.ndarray:
    """Stored values to physical ones, band by band: value * scale + offset (bands a scene lacks stay as read)."""
    for position, band in enumerate(bands):
        if band is not None and (band.scale != 1.0 or band.offset != 0.0):
            data[position] = data[position] * np.float32(band.scale) + np.float32(band.offset)
    return data


def warp_block_parts(window: Window) -> list[tuple[Window, tuple[slice, slice]]]:
    """The pieces of `window` that lie in distinct warp blocks of the grid (blocks of `WARP_BLOCK` from the grid's
    origin, as the readers warp them), each with its place in the window: (rows, columns) slices."""
    row0, col0 = int(window.row_off), int(window.col_off)
    rows = block_spans(row0, int(window.height))
    cols = block_spans(col0, int(window.width))
    return [(Window(c0, r0, c1 - c0, r1 - r0), (slice(r0 - row0, r1 - row0), slice(c0 - col0, c1 - col0)))
            for r0, r1 in rows for c0, c1 in cols]


def empty_strips(part: Window, at: tuple[slice, slice], empty_rows: np.ndarray | None, rows: int,
                 reaches: Callable[[Window], bool] = lambda strip: True):
    """The strips of `part`, cut at the grid's multiples of `rows` (a reader's `warp_rows`), that hold an empty pixel
    (`empty_rows`: one flag per row of `part`; None: every row is empty) and that `reaches` says a scene can give
    values to, each with its place in the window, as `warp_block_parts` (`joined_reads` joins neighbours)."""
    start = int(part.row_off)
    top = at[0].start or 0
    return [(Window(part.col_off, r0, part.width, r1 - r0), (slice(top + r0 - start, top + r1 - start), at[1]))
            for r0, r1 in block_spans(start, int(part.height), rows)
            if (empty_rows is None or empty_rows[r0 - start:r1 - start].any())
            and reaches(Window(part.col_off, r0, part.width, r1 - r0))]


def joined_reads(window: Window, pieces: list[tuple[slice, slice]]) -> list[tuple[Window, tuple[slice, slice]]]:
    """Pieces of `window` to read (rows, columns in it), with those side by side over the same rows joined, then
    those above one another over the same columns: the same pixels in fewer, larger reads. Each with its window."""
    def join(found: list[tuple[slice, slice]], axis: int) -> list[tuple[slice, slice]]:
        other = 1 - axis
        joined: list[tuple[slice, slice]] = []
        for piece in sorted(found, key=lambda p: (p[other].start, p[other].stop, p[axis].start)):
            last = joined[-1] if joined else None
            if last is not None and last[other] == piece[other] and last[axis].stop == piece[axis].start:
                grown = slice(last[axis].start, piece[axis].stop)
                joined[-1] = (last[0], grown) if axis == 1 else (grown, last[1])
            else:
                joined.append(piece)
        return joined

    row0, col0 = int(window.row_off), int(window.col_off)
    return [(Window(col0 + cols.start, row0 + rows.start, cols.stop - cols.start, rows.stop - rows.start), (rows, cols))
            for rows, cols in join(join(pieces, 1), 0)]


class TileRenderer:
    """Opens the tree's sources once and renders any window of the output grid.

    Each leaf reads with its own resampling, or `resampling` when it sets none.
    """

    def __init__(self, tree: ToolTree | dict, grid: OutputGrid | dict, resampling: str = "nearest", mosaic: str = "first",
                 error_threshold: float = DEFAULT_ERROR_THRESHOLD):
        self.tree = tree if isinstance(tree, ToolTree) else parse_tool_tree(tree)
        self.grid = grid if isinstance(grid, OutputGrid) else OutputGrid.from_dict(grid)
        self._mosaic = MOSAIC_METHODS[mosaic]
        self._stack = ExitStack()
        self._keys = node_keys(self.tree.root)
        self._margins = node_margins(self.tree.root, self._keys)
        # Readers serve the grid grown by whole warp blocks: every tile of the export reads through the same
        # blocks, whatever the tile size. (GDAL warps each block as its own chunk, and a chunk's extent sways
        # the warp slightly, e.g. the resampling scale it computes per chunk; so the grid's last, partial blocks
        # can differ within the warp's tolerance from those of a tree without a halo.)
        pad = WARP_BLOCK * math.ceil(self.tree.halo() / WARP_BLOCK)
        # One reader per (scene, resampling), shared by every leaf that reads that scene that way: a false-colour
        # stack and an index of one project warp each scene once, and only the bands the leaves take.
        def key(scene, source):
            return scene.model_dump_json(), (source.resampling or resampling)

        bands: dict[tuple[str, str], set[str]] = {}
        for source in self.tree.sources():
            for scene in source.scenes:
                bands.setdefault(key(scene, source), set()).update(source.bands)
        shared: dict[tuple[str, str], SceneReader] = {}
        self._readers: dict[str, list[SceneReader]] = {}
        for source in self.tree.sources():
            readers = []
            for scene in source.scenes:
                if (k := key(scene, source)) not in shared:
                    method = Resampling[source.resampling or resampling]
                    shared[k] = self._stack.enter_context(SceneReader(scene, self.grid, method, error_threshold,
                                                                      pad=pad, bands=bands[k]))
                readers.append(shared[k])
            self._readers[self._keys[id(source)]] = readers
        self._distinct_readers = list(shared.values())
        self._aois = {id(m): AoiRasterizer(m.geometry, self.grid) for m in self.tree.find(Mask)}

    def close(self) -> None:
        self._stack.close()

    @property
    def bytes_read(self) -> int:
        """Source pixels read so far by every scene reader, in bytes."""
        return sum(reader.bytes_read for reader in self._distinct_readers)

    def __enter__(self) -> TileRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_source(self, source: Leaf, window: Window) -> Stack:
        readers = self._readers[self._keys[id(source)]]
        dtype = np.float32 if source.reflectance else np.result_type(*[np.dtype(s.dtype) for s in source.scenes])
        mosaic = self._mosaic((len(source.bands), int(window.height), int(window.width)), dtype)
        parts = warp_block_parts(window)
        for reader in readers:
            if mosaic.is_done:
                break
            # A scene is read only for the VRT blocks (strips of `SceneReader.warp_rows` in each warp block) that
            # hold empty pixels and that its data area reaches: the VRT warps each of its blocks as a whole whichever
            # part is asked for. Neighbouring ones are read together.
            wanted = [strip for part, at in parts if not mosaic.is_done_in(at) and reader.overlaps(part)
                      for strip in self._strips_to_read(mosaic, reader, part, at)]
            for part, at in joined_reads(window, [at for _, at in wanted]):
                data, valid = reader.read(source.bands, part, dtype)
                if source.reflectance:  # each scene's own scale and offset, before scenes are mosaicked
                    data = _physical(data, [reader.scene.band(name) for name in source.bands])
                mosaic.feed(data, valid, at)
        return Stack(list(source.bands), mosaic.result())

    @staticmethod
    def _strips_to_read(mosaic, reader: SceneReader, part: Window, at: tuple[slice, slice]):
        if reader.warp_rows >= part.height:
            return [(part, at)]
        return empty_strips(part, at, mosaic.empty_rows(at), reader.warp_rows, reader.overlaps)

    def render(self, window: Window) -> np.ndarray:
        """The output pixels of `window`: (bands, rows, cols) in the output dtype, nodata filled."""
        evaluator = Evaluator(self._read_source, lambda mask, grown: self._aois[id(mask)].inside(grown), window,
                              self.grid, self._keys, self._margins)
        return to_output(self.tree.root, evaluator.stack(self.tree.root)[1])
