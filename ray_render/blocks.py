"""Encoded COG blocks on their way into the file: spilled where they are made, assembled by byte copies.

Each tile actor appends the framed blocks it encodes to its own spill file and reports where each one went
(`StoredBlock`). When every block of a COG is known, `assemble` writes the header and copies the blocks into
COG order with `copy_file_range` (in the kernel), hashing them from the spill files on another thread meanwhile,
into a temporary name that is renamed into place, so no half-written file is ever visible under the final name.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ray_render.crc32 import combine_all
from ray_render.publish import publish
from ray_render.tiff import CLASSIC_LIMIT, LEADER, Tag, cog_header, frame, header_size

BlockKey = tuple[int, int, int]  # (level, row, col); level 0 is full resolution


@dataclass(frozen=True)
class StoredBlock:
    """Where one framed block lies: which spill file, at what offset, how long (leader and trailer included)."""

    spill: str
    offset: int
    length: int
    node: str = ""  # the Ray node whose disk holds the spill file ("" when it does not matter)
    crc32: int = 0  # of the framed bytes: a package's ZIP headers need its members' CRCs before their bytes move


class BlockSpill:
    """An append-only file of framed blocks, written by one process."""

    def __init__(self, path: Path, node: str = ""):
        self.path, self.node = Path(path), node
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size

    def put(self, data: bytes) -> StoredBlock:
        """Append one encoded block; once this returns, the bytes are in the file even if the process dies."""
        return self.put_framed(frame(data))

    def put_framed(self, framed: bytes) -> StoredBlock:
        """Append one block already framed (`tiff.frame`)."""
        offset = self._size
        view = memoryview(framed)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(framed)
        return StoredBlock(self.path.name, offset, len(framed), self.node, zlib.crc32(framed))

    def close(self) -> None:
        os.close(self._fd)


def spill_dir(path: Path) -> Path:
    """The directory holding the spill files of the COG that will appear at `path`."""
    path = Path(path)
    return path.with_name(path.name + ".blocks")


def remove_spills(path: Path) -> None:
    shutil.rmtree(spill_dir(path), ignore_errors=True)


# A run of a file's bytes: made by the driver (a header), or a block stored in a spill file.
Piece = bytes | StoredBlock


@dataclass(frozen=True)
class Layout:
    """A COG's bytes as they will lie in the file: its header, then these stored blocks one after another."""

    header: bytes
    blocks: list[StoredBlock]

    @property
    def size(self) -> int:
        return len(self.header) + sum(block.length for block in self.blocks)

    def pieces(self) -> list[Piece]:
        return [self.header, *self.blocks]

    def crc32(self) -> int:
        """The CRC-32 of the whole COG, from its blocks' (never reading them)."""
        return combine_all([(zlib.crc32(self.header), len(self.header))]
                           + [(block.crc32, block.length) for block in self.blocks])


def layout(levels: list[list[Tag]], grids: list[tuple[int, int]], blocks: dict[BlockKey, StoredBlock]) -> Layout:
    """The header and block order of the COG made of `blocks` (absent blocks are sparse).

    `levels` are each level's IFD tags and `grids` its size in blocks (rows, cols), full resolution first.
    Blocks follow COG order: the smallest overview first, row by row, full resolution last.
    """
    order = [(level, row, col) for level in reversed(range(len(grids)))
             for row in range(grids[level][0]) for col in range(grids[level][1])]
    counts = [rows * cols for rows, cols in grids]
    payload = sum(block.length for block in blocks.values())
    bigtiff = header_size(levels, counts, False) + payload > CLASSIC_LIMIT
    start = header_size(levels, counts, bigtiff)
    offsets = [np.zeros(n, dtype=np.uint64) for n in counts]
    sizes = [np.zeros(n, dtype=np.uint64) for n in counts]
    position = start
    placed = []
    for level, row, col in order:
        block = blocks.get((level, row, col))
        if block is not None:
            index = row * grids[level][1] + col
            offsets[level][index] = position + LEADER
            sizes[level][index] = block.length - 8
            position += block.length
            placed.append(block)
    header = cog_header(levels, offsets, sizes, bigtiff)
    assert len(header) == start
    return Layout(header, placed)


def assemble(path: Path, planned: Layout, spills: Path) -> str:
    """Write the COG at `path`: its header, then its blocks copied from the spill files in `spills`. Returns its
    SHA-256, hashed from the spill files on another thread while they are copied: reading the file back after
    took another 0.7 s of one core for a 1.1 GB COG, with the actors idle."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as hashing:
        digest = hashing.submit(sha256_of_pieces, planned.pieces(), spills)
        try:
            with open(partial, "wb") as out:
                write_pieces(out, planned.pieces(), spills)
            sha256 = digest.result()  # before the rename: a failed hash leaves nothing under the final name
            publish(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return sha256


def sha256_of_pieces(pieces: list[Piece], spills: Path) -> str:
    """The hex SHA-256 of what `write_pieces` writes for `pieces`, read from the spill files in `spills`."""
    digest = hashlib.sha256()
    with closing(_with_sources(pieces, spills)) as found:
        for piece, source in found:
            digest.update(piece if source is None else _read_exactly(source, piece.offset, piece.length))
    return digest.hexdigest()


def write_pieces(out, pieces: list[Piece], spills: Path) -> None:
    """Append `pieces` to the open binary file `out`: driver-made bytes as they are, blocks copied from the spill
    files in `spills` (in the kernel where it can)."""
    with closing(_with_sources(pieces, spills)) as found:
        for piece, source in found:
            if source is None:
                out.write(piece)
                continue
            out.flush()
            _copy(source, out.fileno(), piece.offset, piece.length)
    out.flush()


def _with_sources(pieces: list[Piece], spills: Path) -> Iterator[tuple[Piece, int | None]]:
    """Each piece with the open spill file its block lies in (None for driver-made bytes); each spill file is
    opened once, and all are closed when the generator is (use it with `contextlib.closing`)."""
    sources: dict[str, int] = {}
    try:
        for piece in pieces:
            if isinstance(piece, bytes):
                yield piece, None
                continue
            if piece.spill not in sources:
                sources[piece.spill] = os.open(Path(spills) / piece.spill, os.O_RDONLY)
            yield piece, sources[piece.spill]
    finally:
        for fd in sources.values():
            os.close(fd)


def read_ranges(path: Path, ranges: list[tuple[int, int]]) -> bytes:
    """The bytes of `path` at each (offset, length), one after another."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return b"".join(_read_exactly(fd, offset, length) for offset, length in ranges)
    finally:
        os.close(fd)


def _read_exactly(fd: int, offset: int, length: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise OSError(f"spill file ended early at offset {offset + len(data)}")
    return data


def _copy(source: int, target: int, offset: int, length: int) -> None:
    """Append `length` bytes of `source` from `offset` to `target`, in the kernel where it can."""
    while length:
        try:
            copied = os.copy_file_range(source, target, length, offset)
        except OSError:  # an old kernel or a file system without it
            chunk = os.pread(source, min(length, 1 << 24), offset)
            copied = os.write(target, chunk)
        if copied == 0:
            raise OSError(f"spill file ended early at offset {offset}")
        offset += copied
        length -= copied
