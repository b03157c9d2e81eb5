"""The bytes before a COG's pixels: the TIFF header, GDAL's layout block, and one IFD per level.

The layout is GDAL's COG layout, so GDAL reads the file as one of its own (`LAYOUT=COG`): the header, the
"ghost" block declaring the layout, every IFD (full resolution first, then overviews from largest to smallest),
then the tiles, smallest overview first and full resolution last, row by row. Each tile is preceded by its size
(4 bytes) and followed by a copy of its last 4 bytes, as the ghost block promises. Tiles with no data are
sparse (offset and size 0), which GDAL reads as nodata.

The georeferencing, nodata and band tags are GDAL's own: GDAL writes them into an empty, sparse GeoTIFF of the
same grid in memory, and tifffile reads them back. So a custom CRS, band descriptions or an alpha band come out
exactly as GDAL would write them, with no GeoKey code of ours to get wrong.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
import tifffile
from rasterio.io import MemoryFile

from ray_render.grid import OutputGrid

GHOST = (
    "LAYOUT=IFDS_BEFORE_DATA\n"
    "BLOCK_ORDER=ROW_MAJOR\n"
    "BLOCK_LEADER=SIZE_AS_UINT4\n"
    "BLOCK_TRAILER=LAST_4_BYTES_REPEATED\n"
    "KNOWN_INCOMPATIBLE_EDITION=NO\n"
    " "  # GDAL pads the block to an even size
)
# Bytes around each tile's data: a 4-byte size before it, its last 4 bytes repeated after it.
LEADER, TRAILER = 4, 4
TILE_OFFSETS, TILE_BYTE_COUNTS, NEW_SUBFILE_TYPE = 324, 325, 254
# Tags that only the full-resolution IFD carries: georeferencing and GDAL's dataset metadata.
FULL_RESOLUTION_ONLY = {33550, 33922, 34264, 34735, 34736, 34737, 42112}
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8, 17: 8, 18: 8}
SHORT, LONG, LONG8 = 3, 4, 16
# Above this many bytes a file is written as BigTIFF (GDAL's BIGTIFF=IF_SAFER keeps a similar margin).
CLASSIC_LIMIT = 2**32 - 2**26


@dataclass(frozen=True)
class Tag:
    """One IFD entry: code, TIFF type, count, and the value's bytes (little-endian)."""

    code: int
    type: int
    count: int
    data: bytes


def frame(data: bytes) -> bytes:
    """A tile as stored: its size, its bytes, its last 4 bytes again."""
    return struct.pack("<I", len(data)) + data + data[-TRAILER:].rjust(TRAILER, b"\0")


@dataclass(frozen=True)
class Profile:
    """What GDAL needs to write the tags of the file: the grid and how its pixels are stored."""

    grid: OutputGrid
    count: int
    dtype: str
    nodata: float | None
    band_names: tuple[str, ...]
    compress: str
    predictor: int
    blocksize: int
    alpha: bool = False


def gdal_tags(profile: Profile) -> list[Tag]:
    """The full-resolution IFD's tags as GDAL writes them, without the tile offsets and sizes."""
    grid = profile.grid
    creation = dict(
        driver="GTiff", width=grid.width, height=grid.height, count=profile.count, dtype=profile.dtype,
        nodata=profile.nodata, crs=grid.crs, transform=grid.transform, tiled=True, blockxsize=profile.blocksize,
        blockysize=profile.blocksize, sparse_ok=True, compress=profile.compress, predictor=profile.predictor,
    )
    if profile.alpha:
        creation.update(photometric="RGB", alpha="YES")
    with MemoryFile() as memory:
        with memory.open(**creation) as dataset:
            for band, name in enumerate(profile.band_names, start=1):
                dataset.set_band_description(band, name)
        raw = memory.read()
    tags = []
    with tifffile.TiffFile(io.BytesIO(raw)) as tiff:
        for tag in tiff.pages[0].tags:
            if tag.code in (TILE_OFFSETS, TILE_BYTE_COUNTS):
                continue
            size = tag.count * TYPE_SIZES[int(tag.dtype)]
            tags.append(Tag(tag.code, int(tag.dtype), tag.count, raw[tag.valueoffset:tag.valueoffset + size]))
    return tags


def overview_tags(full: list[Tag], width: int, height: int) -> list[Tag]:
    """An overview IFD's tags: the full-resolution ones without georeferencing, at the overview's size."""
    sized = {256: width, 257: height}
    tags = [Tag(NEW_SUBFILE_TYPE, LONG, 1, struct.pack("<I", 1))]
    for tag in full:
        if tag.code in FULL_RESOLUTION_ONLY:
            continue
        if tag.code in sized:
            short = tag.type == SHORT and sized[tag.code] < 2**16
            tag = Tag(tag.code, SHORT if short else LONG, 1, struct.pack("<H" if short else "<I", sized[tag.code]))
        tags.append(tag)
    return tags


def cog_header(levels: list[list[Tag]], offsets: list[np.ndarray], byte_counts: list[np.ndarray], bigtiff: bool) -> bytes:
    """Header, ghost block and IFDs, full resolution first; `offsets` and `byte_counts` per level, row-major.

    Offsets are absolute positions of each tile's data in the final file (0 for a sparse tile).
    """
    ghost = GHOST.encode()
    ghost = f"GDAL_STRUCTURAL_METADATA_SIZE={len(ghost):06d} bytes\n".encode() + ghost
    head = 16 if bigtiff else 8
    position = _even(head + len(ghost))
    ifds, starts = [], []
    for tags, off, counts in zip(levels, offsets, byte_counts, strict=True):
        kind = LONG8 if bigtiff else LONG
        entries = tags + [Tag(TILE_OFFSETS, kind, len(off), _pack(off, kind)), Tag(TILE_BYTE_COUNTS, kind, len(counts),
                                                                                    _pack(counts, kind))]
        starts.append(position)
        ifd = _ifd(sorted(entries, key=lambda t: t.code), position, bigtiff)
        ifds.append(ifd)
        position = _even(position + len(ifd[0]))
    out = bytearray(b"II+\0" + struct.pack("<HHQ", 8, 0, starts[0]) if bigtiff else b"II*\0" + struct.pack("<I", starts[0]))
    out += ghost
    for n, ifd in enumerate(ifds):
        out += b"\0" * (starts[n] - len(out))
        body, pointer = ifd
        next_ifd = struct.pack("<Q" if bigtiff else "<I", starts[n + 1] if n + 1 < len(starts) else 0)
        out += body[:pointer] + next_ifd + body[pointer + len(next_ifd):]
    return bytes(out)


def header_size(levels: list[list[Tag]], tiles_per_level: list[int], bigtiff: bool) -> int:
    """How long `cog_header` will be for these tags and tile counts (values do not change the size)."""
    zeros = [np.zeros(n, dtype=np.uint64) for n in tiles_per_level]
    return len(cog_header(levels, zeros, zeros, bigtiff))


def _ifd(entries: list[Tag], start: int, bigtiff: bool) -> tuple[bytes, int]:
    """One IFD at `start`, its out-of-line values right after it, and where in it the next-IFD pointer goes."""
    entry_size, inline = (20, 8) if bigtiff else (12, 4)
    table = 8 + len(entries) * entry_size + 8 if bigtiff else 2 + len(entries) * entry_size + 4
    values = bytearray()
    body = bytearray(struct.pack("<Q", len(entries)) if bigtiff else struct.pack("<H", len(entries)))
    for tag in entries:
        if len(tag.data) <= inline:
            field = tag.data.ljust(inline, b"\0")
        else:
            if len(values) % 2:
                values += b"\0"
            field = struct.pack("<Q" if bigtiff else "<I", start + table + len(values))
            values += tag.data
        body += struct.pack("<HHQ" if bigtiff else "<HHI", tag.code, tag.type, tag.count) + field
    pointer = len(body)
    body += b"\0" * (8 if bigtiff else 4)
    return bytes(body + values), pointer


def _pack(values: np.ndarray, kind: int) -> bytes:
    return np.asarray(values, dtype="<u8" if kind == LONG8 else "<u4").tobytes()


def _even(n: int) -> int:
    return n + (n % 2)
