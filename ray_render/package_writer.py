"""A sharded render's package written straight from the blocks the tile actors spilled: one stored ZIP of the
shards' COGs, their STAC items, a VRT, a quicklook and a STAC collection, made with no shard file in between.

The ZIP's local headers need each member's CRC-32 before its bytes: the actors record every block's CRC as
they spill it, and a shard's is combined from those (`crc32`), so the driver lays out the whole archive
without reading a pixel. The shards' members go first, written as one file made of pieces:

- locally, the driver copies the blocks into `<base>.zip.partial` in the kernel (`blocks.write_pieces`);
- with an S3 artifact store, the actors upload them from their spill files as the parts of one multipart upload
  (`upload`) to a temporary key beside the final one, and no worker ever holds the output.

The shards' band statistics and the quicklook are then read back through `/vsisubfile/` from what was written
(GDAL serves them from the shards' overviews), the documents and the central directory follow, and the
archive appears under its final name at once: locally by a rename; in S3 by a second multipart upload whose
parts are copied inside the store from the temporary object, then the tail. Either way, on failure nothing
remains under the final name, and the temporary file or object is removed.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import ray

from ray_render.blocks import Layout, Piece, write_pieces
from ray_render.grid import OutputGrid
from ray_render.packaging import Package, package_documents, read_back, shards_vrt
from ray_render.publish import publish
from ray_render.results import RenderResult
from ray_render.scheduling import ActorPool
from ray_render.stats import band_statistics
from ray_render.upload import READ_CHUNK, RangeDigests, S3Output, delete_object, readable, upload_pieces
from ray_render.ziparchive import ArchiveLayout

ZIP_MEDIA_TYPE = "application/zip"


@dataclass(frozen=True)
class MadeCog:
    """A shard's COG made as spilled blocks and not yet written anywhere: its description (`path` its file name
    in the package, `sha256` empty until its bytes are written) and its layout."""

    result: RenderResult
    layout: Layout


class PackageWriter:
    """Writes one sharded render's package (`write`, called by the render while its actors live); `package` then
    describes it. `output`: the S3 object it goes to, else it is written at `path`."""

    def __init__(self, *, base: str, path: Path, output: S3Output | None, grid: OutputGrid, footprint,
                 nodata: float | None, masked: bool, alpha: bool, acquired: list[datetime], created: datetime):
        self.base, self.path, self.output, self.grid, self.footprint = base, Path(path), output, grid, footprint
        self.nodata, self.masked, self.alpha, self.acquired, self.created = nodata, masked, alpha, acquired, created
        self.package: Package | None = None

    @property
    def uploads(self) -> bool:
        """Whether the actors upload the package (so their spill files stay on their own nodes)."""
        return self.output is not None

    def write(self, cogs: list[MadeCog], pool: ActorPool, spills: Path) -> list[RenderResult]:
        """Write the package of `cogs` (in the order given) from the blocks spilled in `spills` (on every node);
        returns each shard's description with its SHA-256."""
        sink = _S3Archive(pool, self.output) if self.output is not None else _LocalArchive(self.path, spills)
        try:
            archive = ArchiveLayout(self.created)
            pieces: list[Piece] = []
            ranges = []
            for made in cogs:
                header, start = archive.add(f"{self.base}/{made.result.path}", made.layout.size, made.layout.crc32())
                pieces += [header, *made.layout.pieces()]
                ranges.append((start, made.layout.size))
            sink.write(pieces)
            results = [replace(made.result, sha256=digest) for made, digest in zip(cogs, sink.digests(ranges), strict=True)]
            with sink.readable() as where:
                paths = [f"/vsisubfile/{start}_{size},{where}" for start, size in ranges]
                per_shard = [band_statistics(path) for path in paths]
                quicklook, statistics = read_back(self.grid, results, paths)
            members, collection = package_documents(
                base=self.base, grid=self.grid, shards=list(zip(results, per_shard, strict=True)),
                footprint=self.footprint, nodata=self.nodata, acquired=self.acquired, created=self.created,
                quicklook=quicklook, vrt=shards_vrt(self.grid, results, self.nodata, self.masked, self.alpha))
            tail = []
            for name, data in members.items():
                header, _ = archive.add(f"{self.base}/{name}", len(data), zlib.crc32(data))
                tail += [header, data]
            tail.append(archive.end())
            where, size, sha256 = sink.finish(b"".join(tail))
        except BaseException:
            sink.abandon()
            raise
        self.package = Package(path=where, bytes=size, sha256=sha256, collection=collection, quicklook=quicklook,
                               statistics=statistics)
        return results


class _LocalArchive:
    """The package as a local file: written at `<path>.partial`, renamed into place when complete."""

    def __init__(self, path: Path, spills: Path):
        self.path, self.spills = path, spills
        self.partial = path.with_name(path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.partial, "wb")  # noqa: SIM115 - open until `finish` or `abandon`
        self._digests: RangeDigests | None = None  # of what was written, read back by `digests`

    def write(self, pieces: list[Piece]) -> None:
        write_pieces(self._file, pieces, self.spills)

    def digests(self, ranges: list[tuple[int, int]]) -> list[str]:
        self._digests = RangeDigests(ranges)
        with open(self.partial, "rb") as written:
            while chunk := written.read(READ_CHUNK):
                self._digests.feed(chunk)
        return self._digests.digests()

    @contextmanager
    def readable(self) -> Iterator[str]:
        yield str(self.partial)

    def finish(self, tail: bytes) -> tuple[str, int, str]:
        self._file.write(tail)
        self._file.close()
        publish(self.partial, self.path)
        self._digests.feed(tail)  # the digest of what `digests` read, continued: the file is read once
        return str(self.path), self._digests.position, self._digests.whole.hexdigest()

    def abandon(self) -> None:
        self._file.close()
        self.partial.unlink(missing_ok=True)


class _S3Archive:
    """The package as an S3 object: its shards uploaded by the actors to a temporary key beside the final one,
    then the final object made of that one (copied in the store) and the tail."""

    def __init__(self, pool: ActorPool, output: S3Output):
        self.pool, self.output = pool, output
        # A key of its own per attempt: GDAL's cache in this process must never serve an earlier attempt's bytes.
        self.staging = replace(output, key=f"{output.key}.{uuid.uuid4().hex[:8]}.partial")
        self.size = 0

    def write(self, pieces: list[Piece]) -> None:
        self.size = upload_pieces(self.pool, pieces, self.staging, "application/octet-stream", read_back=False).bytes

    def digests(self, ranges: list[tuple[int, int]]) -> list[str]:
        return ray.get(self.pool.actors[0].hash_ranges.remote(self.staging, ranges))

    @contextmanager
    def readable(self) -> Iterator[str]:
        with readable(self.staging) as path:
            yield path

    def finish(self, tail: bytes) -> tuple[str, int, str]:
        # The actor that read the temporary object back (`digests`) continues its digest with the tail: the
        # archive is never read back whole a second time.
        size, sha256 = ray.get(self.pool.actors[0].copy_then.remote(self.output, self.staging, self.size, tail,
                                                                     ZIP_MEDIA_TYPE))
        delete_object(self.staging)
        return self.output.uri, size, sha256

    def abandon(self) -> None:
        delete_object(self.staging)
