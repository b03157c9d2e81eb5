"""Which overview blocks one COG has, what each is made from, and when each can be made.

Level 0 is made of the render's tiles (each `tile_size` square, a whole number of COG blocks); every level above
it of COG blocks. A block of level L reads the units of level L-1 under its source span (`overviews.Axis.span`):
its 2x2 children and, where a side is odd, the first pixel column or row of a neighbour. A block exists when any
unit it reads exists; the others are sparse. `Pyramid` tracks, as units finish, which blocks have every input and
can be reduced, and when a unit's pixels are no longer needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ray_render.overviews import Axis, level_sizes

UnitKey = tuple[int, int, int]  # (level, row, col): a tile at level 0, a block above


@dataclass(frozen=True)
class Piece:
    """One input of a reduction: a unit of the level below and the window it covers there (row, col, h, w)."""

    unit: UnitKey
    window: tuple[int, int, int, int]


@dataclass(frozen=True)
class Reduction:
    """How to make one overview block: its level, its rows and columns there, and what it reads."""

    key: UnitKey
    source: tuple[int, int]  # the level below, (width, height)
    target: tuple[int, int]  # this level, (width, height)
    rows: tuple[int, int]
    cols: tuple[int, int]
    pieces: tuple[Piece, ...]


class Pyramid:
    """The overview blocks of one COG of `width` x `height` whose tiles `tiles` (row, col) are rendered."""

    def __init__(self, width: int, height: int, tile_size: int, blocksize: int, tiles: Iterable[tuple[int, int]],
                 method: str):
        self.sizes = level_sizes(width, height, blocksize)
        self.tile_size, self.blocksize, self.method = tile_size, blocksize, method
        self._reductions: dict[UnitKey, Reduction] = {}
        exists = {(0, row, col) for row, col in tiles}
        for level in range(1, len(self.sizes)):
            for key, reduction in self._plan_level(level, exists):
                self._reductions[key] = reduction
                exists.add(key)
        self._waiting = {key: len(r.pieces) for key, r in self._reductions.items()}
        self._readers: dict[UnitKey, list[UnitKey]] = {}
        for key, reduction in self._reductions.items():
            for piece in reduction.pieces:
                self._readers.setdefault(piece.unit, []).append(key)
        self._unread = {unit: len(readers) for unit, readers in self._readers.items()}

    @property
    def levels(self) -> int:
        return len(self.sizes)

    def grid(self, level: int) -> tuple[int, int]:
        """The level's size in COG blocks: (rows, cols)."""
        width, height = self.sizes[level]
        return -(-height // self.blocksize), -(-width // self.blocksize)

    def reductions(self) -> list[Reduction]:
        return list(self._reductions.values())

    def reduction(self, key: UnitKey) -> Reduction:
        """How the overview block `key` is made."""
        return self._reductions[key]

    def unread(self, unit: UnitKey) -> int:
        """How many blocks above still have to read `unit`."""
        return self._unread.get(unit, 0)

    def needed(self, unit: UnitKey) -> bool:
        """Whether a finished unit's pixels feed a block above it (the top level's feed nothing)."""
        return unit in self._readers

    def finished(self, unit: UnitKey) -> list[Reduction]:
        """Record that `unit` is made; returns the reductions that now have all their inputs."""
        ready = []
        for key in self._readers.get(unit, []):
            self._waiting[key] -= 1
            if self._waiting[key] == 0:
                ready.append(self._reductions[key])
        return ready

    def reduced(self, reduction: Reduction) -> list[UnitKey]:
        """Record that `reduction` is done; returns the units whose pixels nothing reads any more."""
        released = []
        for piece in reduction.pieces:
            self._unread[piece.unit] -= 1
            if self._unread[piece.unit] == 0:
                released.append(piece.unit)
        return released

    def _unit_size(self, level: int) -> int:
        return self.tile_size if level == 0 else self.blocksize

    def _plan_level(self, level: int, exists: set[UnitKey]):
        (sw, sh), (tw, th) = self.sizes[level - 1], self.sizes[level]
        y, x = Axis(sh, th, self.method), Axis(sw, tw, self.method)
        unit = self._unit_size(level - 1)
        size = self.blocksize
        for row in range(-(-th // size)):
            rows = (row * size, min(th, (row + 1) * size))
            ylo, yhi = y.span(*rows)
            for col in range(-(-tw // size)):
                cols = (col * size, min(tw, (col + 1) * size))
                xlo, xhi = x.span(*cols)
                pieces = []
                for urow in range(ylo // unit, (yhi - 1) // unit + 1):
                    for ucol in range(xlo // unit, (xhi - 1) // unit + 1):
                        if (level - 1, urow, ucol) in exists:
                            r0, c0 = urow * unit, ucol * unit
                            window = (r0, c0, min(unit, sh - r0), min(unit, sw - c0))
                            pieces.append(Piece((level - 1, urow, ucol), window))
                if pieces:
                    yield (level, row, col), Reduction((level, row, col), (sw, sh), (tw, th), rows, cols, tuple(pieces))
