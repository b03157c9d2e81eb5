"""GET and HEAD /downloads/{token}/{file name} (or /downloads/{token}): serve an export's file by link, with
Range, rate limits and metering.

Every GET is a row in `download` that ends with the bytes actually handed to the server and whether the
range was completed or aborted. The link's quota counts whole-file equivalents (bytes served over the file's
size), so GDAL or QGIS reading the COG in place with many small ranged reads uses only what it fetches.
Whole-file requests are limited per link owner; partial reads, per link and client, far more generously (a
GIS session makes hundreds a minute); the link's byte rate holds for all of them.

The same link also serves the export's small sidecars by name (`export-7.stac.json`, `export-7.png`,
`export-7.manifest.json`: what every delivery carries beside the file), unmetered: they are not the export's bytes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from sqlmodel import Session
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from api.ratelimit import KeyedBuckets, RequestLimiter
from delivery.artifacts import artifact_store
from delivery.http_link import check_quota, record_served, resolve_link
from delivery.manifest import read_sidecars
from delivery.names import media_type_of, name_of
from models.db import get_engine
from models.errors import NotFound
from models.rendered import rendered_of
from models.settings import get_settings
from models.tables import Download
from models.timestamps import utcnow

router = APIRouter()

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(Exception):
    """The requested range starts beyond the end of the file."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a Range header asks for, or None for the whole file.

    Multiple ranges and malformed headers are ignored (the whole file is served), as RFC 9110 allows.
    """
    match = _RANGE.match(header.strip()) if header else None
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # a suffix: the last N bytes
        length = int(last)
        if length == 0:
            raise RangeNotSatisfiable()
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable()
    return start, end


@dataclass(frozen=True)
class Prepared:
    """What one request will be served: the file, the range, the limits, and its metering row."""

    uri: str
    size: int
    etag: str
    filename: str
    link_id: int
    byte_rate: int | None
    range: tuple[int, int] | None
    download_id: int | None


def _prepare(request: Request, token: str, filename: str | None, limits: DownloadLimits) -> Prepared:
    with Session(get_engine()) as session:
        link, export = resolve_link(session, token)
        store = artifact_store()
        size = store.size(export.artifact) if export.artifact else None
        if size is None:
            raise NotFound("the file of this download link is no longer available")
        if filename is not None and filename != name_of(export.artifact):
            raise NotFound(f"this download link serves {name_of(export.artifact)}, not {filename}")
        rendered = rendered_of(export)
        etag = f'"{rendered.sha256 if rendered else ""}"'
        if_range = request.headers.get("if-range")
        header = request.headers.get("range") if if_range in (None, etag) else None
        byte_range = parse_range(header, size)
        whole = byte_range is None or byte_range == (0, size - 1)
        client = request.client.host if request.client else None
        if whole and request.method == "GET":
            limits.whole.check(f"user:{export.owner_id}", "this download link's owner")
        else:
            limits.partial.check(f"link:{link.id}:{client}", "reads of this download link from your address")
        download_id = None
        if request.method == "GET":
            check_quota(session, link, size)
            start, end = byte_range or (0, size - 1)
            record = Download(link_id=link.id, client=client, range_header=header, range_start=start, range_end=end)
            session.add(record)
            session.commit()
            download_id = record.id
        return Prepared(uri=export.artifact, size=size, etag=etag, filename=name_of(export.artifact), link_id=link.id,
                        byte_rate=link.byte_rate_limit, range=byte_range, download_id=download_id)


def _finish(download_id: int, sent: int, completed: bool, size: int) -> None:
    with Session(get_engine()) as session:
        download = session.get(Download, download_id)
        download.bytes_sent, download.completed, download.finished_at = sent, completed, utcnow()
        session.add(download)
        session.flush()
        record_served(session, download.link_id, size)
        session.commit()


async def _metered(prepared: Prepared, start: int, end: int, byte_buckets: KeyedBuckets) -> AsyncIterator[bytes]:
    """The range's bytes, throttled to the link's byte rate; the metering row is closed whatever happens."""
    sent, wanted = 0, end - start + 1
    bucket = None
    step = wanted
    if prepared.byte_rate:
        # Small slices keep the rate smooth; the link's bucket is shared by its concurrent downloads.
        step = max(1024, min(64 * 1024, prepared.byte_rate // 20))
        bucket = byte_buckets.get(f"link:{prepared.link_id}", prepared.byte_rate, step)
    try:
        async for chunk in iterate_in_threadpool(artifact_store().read(prepared.uri, start, end)):
            for offset in range(0, len(chunk), step):
                piece = chunk[offset:offset + step]
                if bucket is not None and (wait := bucket.reserve(len(piece))) > 0:
                    await anyio.sleep(wait)
                yield piece
                sent += len(piece)
    finally:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(_finish, prepared.download_id, sent, sent == wanted, prepared.size)


@router.head("/downloads/{token}/{filename}", operation_id="download_file_head",
             summary="Size and checksum of a download, by its file name")
@router.get("/downloads/{token}/{filename}", operation_id="download_file", name="download_file",
            summary="Download an export's file, by its file name")
async def download_file(token: str, filename: str, request: Request) -> Response:
    """The export's file at a URL that ends in its name (`export-7.tif`), as GIS clients want it."""
    return await _serve(request, token, filename)


@router.head("/downloads/{token}", operation_id="download_head", summary="Size and checksum of a download")
@router.get("/downloads/{token}", operation_id="download", name="download", summary="Download an export's file")
async def download(token: str, request: Request) -> Response:
    """The export's GeoTIFF: 200 or 206 (Range), 404 unknown, 410 expired/revoked/used up, 416, 429."""
    return await _serve(request, token, None)


async def _serve(request: Request, token: str, filename: str | None) -> Response:
    state = request.app.state
    sidecar = await run_in_threadpool(_sidecar, request, token, filename, state.download_limits)
    if sidecar is not None:
        return Response(content=sidecar.data if request.method == "GET" else b"", media_type=media_type_of(sidecar.name),
                        headers={"Content-Length": str(len(sidecar.data))})
    try:
        prepared = await run_in_threadpool(_prepare, request, token, filename, state.download_limits)
    except RangeNotSatisfiable:
        size = (await run_in_threadpool(_size_for, token))
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    start, end = prepared.range or (0, prepared.size - 1)
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": prepared.etag,
        "Content-Length": str(end - start + 1),
        "Content-Disposition": f'attachment; filename="{prepared.filename}"',
    }
    status = 200
    if prepared.range is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{prepared.size}"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type_of(prepared.filename))
    return StreamingResponse(_metered(prepared, start, end, state.download_byte_buckets), status_code=status,
                             headers=headers, media_type=media_type_of(prepared.filename))


def _sidecar(request: Request, token: str, filename: str | None, limits: DownloadLimits):
    """The sidecar named `filename` of the link's export, or None when `filename` names none (the file itself)."""
    if filename is None or not filename.endswith((".json", ".png")):  # the file itself (.tif, .zip): no lookup
        return None
    with Session(get_engine()) as session:
        link, export = resolve_link(session, token)  # an unknown, expired or revoked link answers as for the file
        rendered = rendered_of(export)
        uris = [uri for uri in (rendered.sidecar_uris if rendered else []) if name_of(uri) == filename]
    if not uris:
        return None
    client = request.client.host if request.client else None
    limits.partial.check(f"link:{link.id}:{client}", "reads of this download link from your address")
    (found,) = read_sidecars(uris)
    return found


def _size_for(token: str) -> int:
    with Session(get_engine()) as session:
        _link, export = resolve_link(session, token)
        return artifact_store().size(export.artifact) or 0


@dataclass(frozen=True)
class DownloadLimits:
    """Request limiters of the download endpoint: whole-file GETs per link owner, partial reads per link and client."""

    whole: RequestLimiter
    partial: RequestLimiter


def install_download_limits(app) -> None:
    """The request limiters and byte-rate buckets the download endpoint shares across requests, and CORS for
    browsers reading links when `GEOSHIP_DOWNLOAD_CORS_ORIGINS` names origins."""
    settings = get_settings()
    app.state.download_limits = DownloadLimits(
        whole=RequestLimiter(settings.download_requests_per_minute, settings.download_request_burst),
        partial=RequestLimiter(settings.download_range_requests_per_minute, settings.download_range_request_burst),
    )
    app.state.download_byte_buckets = KeyedBuckets()
    origins = [o.strip() for o in settings.download_cors_origins.split(",") if o.strip()]
    if origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "HEAD"],
                           allow_headers=["Range", "If-Range"],
                           expose_headers=["Content-Range", "Content-Length", "Accept-Ranges", "ETag"])
