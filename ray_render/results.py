"""What a render is asked to write (shards of one grid) and what it reports it wrote."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rasterio.windows import Window


@dataclass(frozen=True)
class Shard:
    """One file of a render: a window of the output grid and where its COG goes."""

    name: str
    window: Window
    path: Path


@dataclass(frozen=True)
class RenderResult:
    """What was written: where, how big, its checksum, its place in the output grid, the tiles it took."""

    path: str
    bytes: int
    sha256: str
    width: int
    height: int
    bands: list[str]
    dtype: str
    tiles: int
    seconds: float
    name: str = "all"
    col_off: int = 0
    row_off: int = 0
