"""HTTP-link delivery: an unguessable, expiring, metered download link to the file in the artifact store.

The token is 256 random bits. The database finds a link by the token's SHA-256 and keeps the token itself
only sealed (encrypted with the server key), so the owner can be shown the URL again while a copy of the
database alone yields no usable link.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import case, func, update
from sqlmodel import Session, select

from delivery.artifacts import artifact_store
from delivery.base import Artifact, parse_config
from delivery.names import name_of
from delivery.sealing import seal, unseal
from models.errors import LinkExpired, NotFound
from models.schemas import HttpLinkConfig, TargetRequest
from models.settings import get_settings
from models.tables import Download, DownloadLink, Export, ExportTarget, User
from models.timestamps import utcnow


def hash_token(token: str) -> str:
    """What the database stores to find a link by its token."""
    return hashlib.sha256(token.encode()).hexdigest()


def link_url(link: DownloadLink, filename: str | None = None, base_url: str | None = None) -> str:
    """The public URL of a link: `/downloads/<token>/<file name>`, so that clients that go by a URL's extension
    (GDAL's CPL_VSIL_CURL_ALLOWED_EXTENSIONS=.tif, browsers) know what it is; `/downloads/<token>` works too."""
    base = (base_url or get_settings().public_url).rstrip("/")
    url = f"{base}/downloads/{unseal(link.token_sealed)}"
    return f"{url}/{filename}" if filename else url


def issue_link(session: Session, *, export_id: int, target_id: int | None, ttl_hours: float,
               byte_rate_limit: int | None = None, download_quota: int | None = None) -> DownloadLink:
    """A new download link row for an export."""
    token = secrets.token_urlsafe(32)
    link = DownloadLink(
        export_id=export_id, target_id=target_id, token_hash=hash_token(token), token_sealed=seal(token),
        expires_at=utcnow() + timedelta(hours=ttl_hours), byte_rate_limit=byte_rate_limit,
        download_quota=download_quota,
    )
    session.add(link)
    session.flush()
    return link


def resolve_link(session: Session, token: str) -> tuple[DownloadLink, Export]:
    """The live link for `token` and its export; `NotFound` if unknown, `LinkExpired` if expired or revoked.

    The quota is enforced by `check_quota`.
    """
    link = session.exec(select(DownloadLink).where(DownloadLink.token_hash == hash_token(token))).first()
    if link is None:
        raise NotFound("unknown download link")
    if link.revoked:
        raise LinkExpired("this download link has been revoked")
    if link.expires_at <= utcnow():
        raise LinkExpired(f"this download link expired at {link.expires_at.isoformat()}")
    return link, session.get(Export, link.export_id)


def reserved_bytes(session: Session, link: DownloadLink):
    """Bytes the link has served, counting each request still running as its whole range."""
    running = func.coalesce(Download.range_end - Download.range_start + 1, 0)
    served = case((Download.finished_at.is_(None), running), else_=Download.bytes_sent)
    return session.exec(select(func.coalesce(func.sum(served), 0)).where(Download.link_id == link.id)).one()


def check_quota(session: Session, link: DownloadLink, size: int) -> None:
    """`LinkExpired` when the link has served its quota of whole-file equivalents (bytes served / `size`).

    Reading in place is not downloading: a GIS client's ranged reads use only the bytes they fetch, and a
    download resumed with Range continues the same one.
    """
    if link.download_quota is not None and reserved_bytes(session, link) >= link.download_quota * max(size, 1):
        raise LinkExpired(f"this download link has served all of its {link.download_quota} download(s) "
                          f"(counted as bytes served over the file's size)")


def record_served(session: Session, link_id: int, size: int) -> None:
    """Update the link's count of whole-file equivalents served, from its finished requests."""
    sent = session.exec(select(func.coalesce(func.sum(Download.bytes_sent), 0)).where(Download.link_id == link_id)).one()
    session.execute(update(DownloadLink).where(DownloadLink.id == link_id).values(downloads_used=int(sent) // max(size, 1)))


def list_links(session: Session, *, owner: User, export_id: int | None = None) -> list[dict[str, Any]]:
    """The owner's download links with their URL, limits and metering totals, newest first."""
    statement = (
        select(DownloadLink, Export.artifact, func.count(Download.id), func.coalesce(func.sum(Download.bytes_sent), 0))
        .join(Export, Export.id == DownloadLink.export_id)
        .outerjoin(Download, Download.link_id == DownloadLink.id)
        .where(Export.owner_id == owner.id)
        .group_by(DownloadLink.id, Export.artifact).order_by(DownloadLink.id.desc())
    )
    if export_id is not None:
        statement = statement.where(DownloadLink.export_id == export_id)
    now = utcnow()
    rows = []
    for link, artifact, requests, sent in session.exec(statement).all():
        size = artifact_store().size(artifact) if artifact else None
        rows.append({
            "id": link.id, "export_id": link.export_id, "url": link_url(link, name_of(artifact) if artifact else None),
            "expires_at": link.expires_at,
            "state": "revoked" if link.revoked else "expired" if link.expires_at <= now else "live",
            "byte_rate_limit": link.byte_rate_limit, "download_quota": link.download_quota,
            # Whole-file equivalents: bytes served over the file's size.
            "downloads_used": round(int(sent) / size, 3) if size else float(link.downloads_used),
            "requests": requests, "bytes_sent": int(sent)})
    return rows


def revoke_link(session: Session, *, owner: User, link_id: int) -> DownloadLink:
    """Revoke one of the owner's links; it answers 410 from then on."""
    link = session.get(DownloadLink, link_id)
    export = session.get(Export, link.export_id) if link else None
    if link is None or export is None or export.owner_id != owner.id:
        raise NotFound(f"download link {link_id} not found")
    link.revoked = True
    session.add(link)
    session.flush()
    return link


class HttpLinkDelivery:
    """Delivers by issuing a download link; the file itself stays in the artifact store."""

    def check(self, session: Session, *, owner_id: int, target: TargetRequest, field: str, estimate_bytes: int) -> None:
        parse_config(HttpLinkConfig, target.config, f"{field}.config")

    def deliver(self, session: Session, artifact: Artifact, target: ExportTarget) -> dict[str, Any]:
        config = HttpLinkConfig.model_validate(target.config or {})
        link = issue_link(
            session, export_id=artifact.export_id, target_id=target.id,
            ttl_hours=config.ttl_hours or get_settings().link_ttl_hours,
            byte_rate_limit=config.byte_rate_limit, download_quota=config.download_quota,
        )
        return {"link_id": link.id, "expires_at": link.expires_at.isoformat(), "bytes": artifact.bytes,
                "sha256": artifact.sha256, "sidecars": [name_of(uri) for uri in artifact.sidecar_uris]}

    def verify(self, session: Session, artifact: Artifact, target: ExportTarget) -> str | None:
        link = session.get(DownloadLink, (target.result or {}).get("link_id"))
        if link is None or link.revoked:
            return "its download link is missing or revoked"
        if artifact_store().size(artifact.uri) != artifact.bytes:
            return "the file its link serves is missing from the artifact store"
        return None

    def cleanup(self, session: Session, target: ExportTarget) -> None:
        link = session.get(DownloadLink, (target.result or {}).get("link_id"))
        if link is not None:
            link.revoked = True
            session.add(link)
            session.flush()
