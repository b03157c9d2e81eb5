"""What a render is asked to write (shards of one grid) and what it reports it wrote."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    # When the actors wrote the COG: tiles rendered per Ray node, and the bytes of the answers the driver received.
    tiles_by_node: dict[str, int] = field(default_factory=dict)
    driver_bytes: int = 0
