"""Making a COG's blocks where the pixels are: the full-resolution blocks of a rendered tile, and overview
blocks reduced from the level below. Plain Python (tested without Ray); each tile actor holds one `BlockMaker`.

A block maker spills what it encodes into its own file when it shares a file system with the driver, and
otherwise returns the bytes (a Ray cluster without a shared artifact store).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ray_render.blocks import BlockSpill, StoredBlock
from ray_render.codec import BlockCodec
from ray_render.overviews import Axis, Validity, reduce_block
from ray_render.pyramid import Reduction, UnitKey
from ray_render.tiff import frame

# A block as the driver learns of it: where it was spilled, or its framed bytes.
Made = StoredBlock | bytes


@dataclass(frozen=True)
class BlockSpec:
    """What every block of one render shares: how it is encoded, which pixels are valid, how overviews reduce."""

    codec: BlockCodec
    validity: Validity
    method: str


class BlockMaker:
    """Encodes blocks for one render; `spill_to` is the render's spill directory (None: return the bytes)."""

    def __init__(self, spec: BlockSpec, spill_to: Path | None, name: str, node: str = ""):
        self.spec, self.node = spec, node
        self._spill_path = Path(spill_to) / f"{name}.bin" if spill_to is not None else None
        self._spill: BlockSpill | None = None  # opened with the first block: an actor that makes none leaves no file

    def tile_blocks(self, tile: tuple[int, int], pixels: np.ndarray, tile_size: int) -> dict[UnitKey, Made]:
        """Encode the full-resolution blocks of the tile (row, col): {(0, block row, block col): block}."""
        size = self.spec.codec.blocksize
        per_tile = tile_size // size
        made = {}
        _, rows, cols = pixels.shape
        for r in range(0, rows, size):
            for c in range(0, cols, size):
                key = (0, tile[0] * per_tile + r // size, tile[1] * per_tile + c // size)
                made[key] = self._store(pixels[:, r:r + size, c:c + size])
        return made

    def reduce(self, reduction: Reduction, arrays: list[np.ndarray], encode: bool = True) -> tuple[Made | None, np.ndarray]:
        """Make one overview block from its pieces' pixels (in `reduction.pieces` order): (block, its pixels); without
        `encode`, only its pixels (a block made again for the blocks above it, its own already stored)."""
        (sw, sh), (tw, th) = reduction.source, reduction.target
        y, x = Axis(sh, th, self.spec.method), Axis(sw, tw, self.spec.method)
        (ylo, yhi), (xlo, xhi) = y.span(*reduction.rows), x.span(*reduction.cols)
        bands = arrays[0].shape[0]
        source = np.full((bands, yhi - ylo, xhi - xlo), self.spec.validity.empty, dtype=arrays[0].dtype)
        for piece, array in zip(reduction.pieces, arrays, strict=True):
            row, col, height, width = piece.window
            r0, r1 = max(row, ylo), min(row + height, yhi)
            c0, c1 = max(col, xlo), min(col + width, xhi)
            if r0 < r1 and c0 < c1:
                source[:, r0 - ylo:r1 - ylo, c0 - xlo:c1 - xlo] = array[:, r0 - row:r1 - row, c0 - col:c1 - col]
        pixels = reduce_block(source, y, x, reduction.rows, reduction.cols, self.spec.validity)
        return (self._store(pixels) if encode else None), pixels

    def close(self) -> None:
        if self._spill is not None:
            self._spill.close()

    def discard(self) -> None:
        """Close and remove the spill file (and its directory once empty)."""
        self.close()
        self._spill = None
        if self._spill_path is not None:
            self._spill_path.unlink(missing_ok=True)
            try:
                self._spill_path.parent.rmdir()
            except OSError:  # other actors' files are still there
                pass

    def _store(self, pixels: np.ndarray) -> Made:
        data = self.spec.codec.encode(pixels)
        if self._spill_path is None:
            return frame(data)
        if self._spill is None:
            self._spill = BlockSpill(self._spill_path, self.node)
        return self._spill.put(data)
