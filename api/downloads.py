"""GET /downloads/{token}: stream an export's file and meter every byte sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlmodel import Session

from delivery.http_link import resolve_link
from models.db import get_engine
from models.errors import NotFound
from models.tables import Download
from models.timestamps import utcnow

CHUNK = 1024 * 1024

router = APIRouter()


def _metered_stream(path: Path, download_id: int) -> Iterator[bytes]:
    """Yield the file in chunks; whatever happens, record the bytes actually handed to the server."""
    sent, completed = 0, False
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk
                sent += len(chunk)
        completed = True
    finally:
        with Session(get_engine()) as session:
            download = session.get(Download, download_id)
            download.bytes_sent, download.completed, download.finished_at = sent, completed, utcnow()
            session.add(download)
            session.commit()


@router.get("/downloads/{token}", name="download")
def download(token: str, request: Request) -> StreamingResponse:
    """The export's GeoTIFF: 404 for an unknown token, 410 for an expired or revoked link."""
    with Session(get_engine()) as session:
        link, export = resolve_link(session, token)
        path = Path(export.artifact) if export and export.artifact else None
        if path is None or not path.is_file():
            raise NotFound("the file of this download link is no longer available")
        record = Download(link_id=link.id, client=request.client.host if request.client else None,
                          range_header=request.headers.get("range"))
        session.add(record)
        session.commit()
        download_id = record.id
    headers = {
        "Content-Length": str(path.stat().st_size),
        "Content-Disposition": f'attachment; filename="{path.name}"',
    }
    return StreamingResponse(_metered_stream(path, download_id), media_type="image/tiff", headers=headers)
