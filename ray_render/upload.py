"""Outputs straight into object storage: a COG uploaded as the parts of one S3 multipart upload by the tile
actors that hold its bytes.

The driver plans the file (`blocks.layout`: the header, then the blocks in COG order), cuts it into parts of at
least 5 MiB and hands each part to an actor on the node whose disk holds most of the part's blocks. That actor
reads those blocks from the spill files on its node, receives the rest from an actor on their node (through
Ray's object store, actor to actor), and uploads the part. The driver only creates, completes or aborts the
upload and hands the small header to the actors: no pixel passes through it, and no worker needs a copy of
the output. S3 shows a multipart upload under its key only once it is completed, so nothing half-written is
ever visible there; any failure aborts the upload, so no parts linger.

Credentials are the platform's, from the standard AWS environment (`remote.scene_environment`), which every
tile actor has; the artifact store's endpoint travels with the `S3Output`.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import pickle
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import rasterio
import ray
from ray.exceptions import RayActorError, RayError

from models.errors import OutputRefused, RenderError
from ray_render.blocks import Layout, Piece, read_ranges
from ray_render.remote import gdal_options, gdal_path
from ray_render.scheduling import TILE_ATTEMPTS, ActorPool, is_permanent

MIN_PART = 5 * 1024**2  # S3's limits: every part but the last at least 5 MiB, at most 10,000 parts
MAX_PART = 5 * 1024**3
MAX_PARTS = 10_000
PARTS_IN_FLIGHT_PER_ACTOR = 2
REPLACEMENT_WAIT_S = 300  # for a replacement actor to start (a cluster scaling up takes minutes)
READ_CHUNK = 8 * 1024**2
COPY_PART = 256 * 1024**2  # parts copied inside the store (from a package's temporary object)
COPIES_IN_FLIGHT = 8
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
# What S3 answers when retrying cannot help: the store refuses this output.
REFUSALS = {"NoSuchBucket", "AccessDenied", "AllAccessDisabled", "InvalidBucketName", "InvalidAccessKeyId",
            "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "EntityTooSmall", "EntityTooLarge"}


@dataclass(frozen=True)
class S3Output:
    """Where a render's COG goes in object storage: s3://bucket/key, at an S3-compatible endpoint or AWS."""

    bucket: str
    key: str
    endpoint_url: str | None = None
    part_size: int = 16 * 1024**2

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class Segment:
    """A run of a part's bytes: from the header (`spill` None, `offset` into the header) or from a spill file on
    `node`."""

    spill: str | None
    offset: int
    length: int
    node: str = ""


@dataclass(frozen=True)
class Uploaded:
    """The completed object, as read back: its size and SHA-256; `received`, the bytes of the answers the driver
    took in while uploading it."""

    uri: str
    bytes: int
    sha256: str
    received: int = 0


def part_size_for(size: int, preferred: int) -> int:
    """A part size within S3's limits that needs at most 10,000 parts for `size` bytes."""
    return min(MAX_PART, max(MIN_PART, preferred, math.ceil(size / MAX_PARTS)))


def plan_parts(pieces: list[Piece], part_size: int) -> list[list[Segment]]:
    """The file made of `pieces` cut into consecutive parts of `part_size` bytes (the last may be smaller), each a
    list of segments; a piece may straddle two parts. Driver-made pieces become segments of `driver_bytes(pieces)`."""
    runs, at = [], 0
    for piece in pieces:
        if isinstance(piece, bytes):
            runs.append(Segment(None, at, len(piece)))
            at += len(piece)
        else:
            runs.append(Segment(piece.spill, piece.offset, piece.length, piece.node))
    parts: list[list[Segment]] = [[]]
    room = part_size
    for run in runs:
        offset, length = run.offset, run.length
        while length:
            if room == 0:
                parts.append([])
                room = part_size
            take = min(room, length)
            parts[-1].append(Segment(run.spill, offset, take, run.node))
            offset, length, room = offset + take, length - take, room - take
    return [part for part in parts if part]


def driver_bytes(pieces: list[Piece]) -> bytes:
    """The driver-made pieces of a file, one after another: what its header segments point into."""
    return b"".join(piece for piece in pieces if isinstance(piece, bytes))


def size_of(pieces: list[Piece]) -> int:
    return sum(len(piece) if isinstance(piece, bytes) else piece.length for piece in pieces)


def s3_client(endpoint_url: str | None):
    """A boto3 client with the standard AWS credential chain and retries with backoff on throttling and 5xx."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "total_max_attempts": 5}, connect_timeout=10, read_timeout=120,
                    signature_version="s3v4", s3={"addressing_style": "path" if endpoint_url else "auto"},
                    request_checksum_calculation="when_required", response_checksum_validation="when_required")
    # A session of its own: boto3's default session resolves the credential chain once per process and keeps
    # what it found, so keys changed in the environment since (rotated, or another render's) would go unseen.
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)


def storage_error(exc: Exception, doing: str) -> Exception:
    """Our error for a boto3 failure while `doing`: refused (permanent) or transient; never a secret."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in REFUSALS:
            return OutputRefused(f"the artifact store refused {doing}: {code}")
        return RenderError(f"the artifact store failed {doing}: {code or 'error'}")
    if isinstance(exc, BotoCoreError):
        return RenderError(f"the artifact store failed {doing}: {type(exc).__name__}")
    return exc


def put_part(client, output: S3Output, upload_id: str, number: int, segments: list[Segment], header: bytes,
             read_local: Callable[[str, list[tuple[int, int]]], bytes], fetched: dict[str, bytes]) -> dict:
    """Gather one part's bytes and upload it: header segments from `header`, segments on other nodes from
    `fetched` (by node, in segment order), the rest with `read_local`. Returns the part's number, ETag and MD5."""
    cursors = dict.fromkeys(fetched, 0)
    chunks = []
    for segment in segments:
        if segment.spill is None:
            chunks.append(header[segment.offset:segment.offset + segment.length])
        elif segment.node in fetched:
            at = cursors[segment.node]
            chunks.append(fetched[segment.node][at:at + segment.length])
            cursors[segment.node] = at + segment.length
        else:
            chunks.append(read_local(segment.spill, [(segment.offset, segment.length)]))
    body = b"".join(chunks)
    digest = hashlib.md5(body).digest()
    try:
        answer = client.upload_part(Bucket=output.bucket, Key=output.key, UploadId=upload_id, PartNumber=number,
                                    Body=body, ContentMD5=base64.b64encode(digest).decode())
    except Exception as exc:
        raise storage_error(exc, f"part {number} of {output.uri}") from None
    return {"PartNumber": number, "ETag": answer["ETag"], "md5": digest.hex(), "bytes": len(body)}


def hash_object(client, output: S3Output) -> tuple[int, str]:
    """The stored object's size and SHA-256, read back from the store."""
    found = hash_ranges(client, output, [])
    return found.position, found.whole.hexdigest()


@contextmanager
def readable(output: S3Output) -> Iterator[str]:
    """The GDAL path of the stored object, readable inside the block with the platform's credentials (the
    standard AWS environment) at the output's endpoint."""
    environ = {**os.environ, **({"AWS_ENDPOINT_URL_S3": output.endpoint_url} if output.endpoint_url else {})}
    with rasterio.Env(**gdal_options(environ)):
        yield gdal_path(output.uri)


class RangeDigests:
    """SHA-256 digests of a file fed in order from its first byte: of the whole, and of each (offset, length) of
    `ranges` (in order, not overlapping). Feeding may go on past the ranges (the whole's digest)."""

    def __init__(self, ranges: list[tuple[int, int]]):
        self.ranges, self.whole, self.position, self._current = ranges, hashlib.sha256(), 0, 0
        self._digests = [hashlib.sha256() for _ in ranges]

    def feed(self, data: bytes) -> None:
        self.whole.update(data)
        view, position = memoryview(data), self.position
        while view and self._current < len(self.ranges):
            offset, length = self.ranges[self._current]
            if position < offset:  # bytes before the next range
                skip = min(len(view), offset - position)
                view, position = view[skip:], position + skip
                continue
            take = min(len(view), offset + length - position)
            self._digests[self._current].update(view[:take])
            view, position = view[take:], position + take
            if position == offset + length:
                self._current += 1
        self.position += len(data)

    def digests(self) -> list[str]:
        if self._current < len(self.ranges):
            raise RenderError(f"the file ended at byte {self.position}, before the range at {self.ranges[self._current][0]}")
        return [digest.hexdigest() for digest in self._digests]


def hash_ranges(client, output: S3Output, ranges: list[tuple[int, int]]) -> RangeDigests:
    """The stored object read whole, once, into the digests of its `ranges` and of the whole."""
    found = RangeDigests(ranges)
    try:
        for chunk in client.get_object(Bucket=output.bucket, Key=output.key)["Body"].iter_chunks(READ_CHUNK):
            found.feed(chunk)
    except Exception as exc:
        raise storage_error(exc, f"reading back {output.uri}") from None
    return found


def upload_copy_then(output: S3Output, source: S3Output, source_size: int, tail: bytes, content_type: str) -> int:
    """Make `output` the object `source` (its first `source_size` bytes, copied inside the store) followed by
    `tail`, as one multipart upload; a failure aborts it. Returns its size. (Run by a tile actor: the bytes of a
    source too small to copy as a part pass through it, never through the driver.)"""
    client = s3_client(output.endpoint_url)
    size = source_size + len(tail)
    # Copied parts are large (S3 copies them itself) and asked for a few at a time; the last one takes the
    # remainder, so that every part but the tail is at least 5 MiB. A source smaller than that goes with the
    # tail in one part.
    part = part_size_for(source_size, max(output.part_size, COPY_PART))
    cuts = list(range(0, source_size, part)) if source_size >= MIN_PART else []
    if len(cuts) > 1 and source_size - cuts[-1] < MIN_PART:
        cuts.pop()
    ranges = [(start, (cuts[i + 1] if i + 1 < len(cuts) else source_size) - 1) for i, start in enumerate(cuts)]
    try:
        upload_id = client.create_multipart_upload(Bucket=output.bucket, Key=output.key,
                                                   ContentType=content_type)["UploadId"]
    except Exception as exc:
        raise storage_error(exc, f"starting the upload of {output.uri}") from None

    def copy(number: int, first: int, last: int) -> dict:
        answer = client.upload_part_copy(Bucket=output.bucket, Key=output.key, UploadId=upload_id, PartNumber=number,
                                         CopySource={"Bucket": source.bucket, "Key": source.key},
                                         CopySourceRange=f"bytes={first}-{last}")
        return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

    try:
        if not ranges and source_size:
            tail = client.get_object(Bucket=source.bucket, Key=source.key,
                                     Range=f"bytes=0-{source_size - 1}")["Body"].read() + tail
        with ThreadPoolExecutor(max_workers=COPIES_IN_FLIGHT) as copies:
            parts = list(copies.map(lambda numbered: copy(numbered[0], *numbered[1]),
                                    enumerate(ranges, start=1)))
        answer = client.upload_part(Bucket=output.bucket, Key=output.key, UploadId=upload_id,
                                    PartNumber=len(parts) + 1, Body=tail)
        parts.append({"PartNumber": len(parts) + 1, "ETag": answer["ETag"]})
        client.complete_multipart_upload(Bucket=output.bucket, Key=output.key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
    except BaseException as exc:
        _abort(client, output, upload_id)
        if not isinstance(exc, Exception):
            raise
        raise storage_error(exc, f"completing the upload of {output.uri}") from None
    try:
        stored = client.head_object(Bucket=output.bucket, Key=output.key)["ContentLength"]
    except Exception as exc:
        raise storage_error(exc, f"reading back {output.uri}") from None
    if stored != size:
        raise RenderError(f"{output.uri} holds {stored} bytes after upload, expected {size}")
    return size


def delete_object(output: S3Output) -> None:
    """Remove the object; best effort (a lifecycle rule on the bucket is the backstop)."""
    try:
        s3_client(output.endpoint_url).delete_object(Bucket=output.bucket, Key=output.key)
    except Exception:  # noqa: BLE001 - what led here matters more
        pass


def local_reader(spills: Path) -> Callable[[str, list[tuple[int, int]]], bytes]:
    """Reads ranges of the spill files in `spills` (on this node)."""
    return lambda name, ranges: read_ranges(Path(spills) / name, ranges)


def upload_cog(pool: ActorPool, planned: Layout, output: S3Output) -> Uploaded:
    """Upload the COG laid out by `planned` to `output` through the actors of `pool`; returns what S3 holds."""
    return upload_pieces(pool, planned.pieces(), output, COG_MEDIA_TYPE)


def upload_pieces(pool: ActorPool, pieces: list[Piece], output: S3Output, content_type: str,
                  read_back: bool = True) -> Uploaded:
    """Upload the file made of `pieces` to `output` through the actors of `pool`; returns what S3 holds (its
    SHA-256 read back by an actor when `read_back`, else "")."""
    client = s3_client(output.endpoint_url)
    size = size_of(pieces)
    try:
        upload_id = client.create_multipart_upload(Bucket=output.bucket, Key=output.key,
                                                   ContentType=content_type)["UploadId"]
    except Exception as exc:
        raise storage_error(exc, f"starting the upload of {output.uri}") from None
    try:
        parts = plan_parts(pieces, part_size_for(size, output.part_size))
        done = _PartUploads(pool, parts, driver_bytes(pieces), output, upload_id).run()
        client.complete_multipart_upload(
            Bucket=output.bucket, Key=output.key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in done]})
    except BaseException as exc:
        _abort(client, output, upload_id)
        if isinstance(exc, RayError) or not isinstance(exc, Exception):
            raise
        raise storage_error(exc, f"completing the upload of {output.uri}") from None
    expected = hashlib.md5(b"".join(bytes.fromhex(p["md5"]) for p in done)).hexdigest() + f"-{len(done)}"
    stored, sha256 = ray.get(pool.actors[0].hash_object.remote(output)) if read_back else (size, "")
    etag = _etag(client, output)
    if stored != size or etag not in (expected, None):
        raise RenderError(f"{output.uri} holds {stored} bytes (ETag {etag}) after upload, expected {size} ({expected})")
    return Uploaded(output.uri, size, sha256, len(pickle.dumps(done)) + len(pickle.dumps((stored, sha256))))


def _etag(client, output: S3Output) -> str | None:
    """The object's ETag, or None when it is not an MD5 of the parts (SSE-KMS)."""
    try:
        head = client.head_object(Bucket=output.bucket, Key=output.key)
    except Exception as exc:
        raise storage_error(exc, f"reading back {output.uri}") from None
    return None if head.get("ServerSideEncryption") == "aws:kms" else head["ETag"].strip('"')


def _abort(client, output: S3Output, upload_id: str) -> None:
    """Abort the upload so its parts are freed; best effort (the failure that led here matters more)."""
    try:
        client.abort_multipart_upload(Bucket=output.bucket, Key=output.key, UploadId=upload_id)
    except Exception:  # noqa: BLE001 - a lifecycle rule on the bucket is the backstop
        pass


class _PartUploads:
    """Sends every part to an actor on the node holding most of its bytes, a few per actor at a time, and sends
    a part again (to live actors) when an actor dies or a transient error ends it."""

    def __init__(self, pool: ActorPool, parts: list[list[Segment]], header: bytes, output: S3Output, upload_id: str):
        self.pool, self.parts, self.header, self.output, self.upload_id = pool, parts, header, output, upload_id
        self._nodes: list[str] = []
        self._busy: list[int] = []
        self._pending: dict = {}  # ref -> (part index, actor index)
        self._tries = [0] * len(parts)

    def run(self) -> list[dict]:
        self._find_nodes()
        done: dict[int, dict] = {}
        waiting = list(range(len(self.parts)))
        limit = PARTS_IN_FLIGHT_PER_ACTOR * len(self.pool.actors)
        while waiting or self._pending:
            while waiting and len(self._pending) < limit:
                self._send(waiting.pop(0))
            ready, _ = ray.wait(list(self._pending), num_returns=1)
            index, actor = self._pending.pop(ready[0])
            self._busy[actor] -= 1
            try:
                done[index] = ray.get(ready[0])
            except RayError as exc:
                if is_permanent(exc) or self._tries[index] >= TILE_ATTEMPTS:
                    raise
                if isinstance(exc, RayActorError):
                    self._find_nodes()  # replaces the dead, so the part goes to live actors
                waiting.insert(0, index)
        return [done[i] for i in range(len(self.parts))]

    def _find_nodes(self) -> None:
        """Each actor's node, replacing actors that have died. An actor busy with parts answers after them."""
        asked = [actor.node.remote() for actor in self.pool.actors]
        nodes = []
        for index, ref in enumerate(asked):
            try:
                nodes.append(ray.get(ref))
            except RayActorError:
                self.pool.replace(index)
                try:
                    nodes.append(ray.get(self.pool.actors[index].node.remote(), timeout=REPLACEMENT_WAIT_S))
                except ray.exceptions.GetTimeoutError:
                    raise RenderError("a tile actor died during the upload and no replacement could start") from None
        self._nodes = nodes
        self._busy = self._busy or [0] * len(nodes)

    def _actor_on(self, node: str) -> int:
        """The least busy live actor on `node`."""
        on_node = [i for i, n in enumerate(self._nodes) if n == node]
        if not on_node:
            raise RenderError(f"the blocks spilled on Ray node {node[:12]} are lost: no tile actor runs there any more")
        return min(on_node, key=lambda i: self._busy[i])

    def _send(self, index: int) -> None:
        segments = self.parts[index]
        weight: dict[str, int] = {}
        for segment in segments:
            if segment.spill is not None:
                weight[segment.node] = weight.get(segment.node, 0) + segment.length
        if weight:
            uploader = self._actor_on(max(weight, key=weight.get))
        else:  # a part of header only
            uploader = min(range(len(self._nodes)), key=self._busy.__getitem__)
        others = [node for node in weight if node != self._nodes[uploader]]
        fetches = []
        for node in others:  # read where the spill file is, handed actor to actor
            reader = self.pool.actors[self._actor_on(node)]
            ranges = [(s.spill, s.offset, s.length) for s in segments if s.spill is not None and s.node == node]
            fetches.append(reader.read_spill.remote(ranges))
        # Only the driver-made bytes this part holds travel with it, their segments renumbered into that slice.
        header, renumbered = bytearray(), []
        for segment in segments:
            if segment.spill is None:
                start = len(header)
                header += self.header[segment.offset:segment.offset + segment.length]
                segment = Segment(None, start, segment.length)
            renumbered.append(segment)
        header = bytes(header)
        ref = self.pool.actors[uploader].upload_part.remote(self.output, self.upload_id, index + 1, renumbered, header,
                                                            others, *fetches)
        self._pending[ref] = (index, uploader)
        self._busy[uploader] += 1
        self._tries[index] += 1
