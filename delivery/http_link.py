"""HTTP-link delivery: an unguessable, expiring download link to the file in the artifact store.

The token is HMAC(secret key, per-link salt). The database keeps the salt and the token's SHA-256, so the
link can be shown again to its owner while a copy of the database alone reveals no usable token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from delivery.base import Artifact
from models.errors import LinkExpired, NotFound
from models.keys import get_secret_key
from models.schemas import HttpLinkConfig
from models.settings import get_settings
from models.tables import DownloadLink, Export, ExportTarget
from models.timestamps import utcnow


def _token(salt: str) -> str:
    digest = hmac.new(get_secret_key(), f"download-link:{salt}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hash_token(token: str) -> str:
    """What the database stores to find a link by its token."""
    return hashlib.sha256(token.encode()).hexdigest()


def link_url(link: DownloadLink, base_url: str | None = None) -> str:
    """The public URL of a link."""
    base = (base_url or get_settings().public_url).rstrip("/")
    return f"{base}/downloads/{_token(link.salt)}"


def issue_link(session: Session, *, export_id: int, target_id: int | None, ttl_hours: float,
               byte_rate_limit: int | None = None, download_quota: int | None = None) -> DownloadLink:
    """A new download link row for an export."""
    salt = secrets.token_urlsafe(24)
    link = DownloadLink(
        export_id=export_id, target_id=target_id, salt=salt, token_hash=hash_token(_token(salt)),
        expires_at=utcnow() + timedelta(hours=ttl_hours), byte_rate_limit=byte_rate_limit,
        download_quota=download_quota,
    )
    session.add(link)
    session.flush()
    return link


def resolve_link(session: Session, token: str) -> tuple[DownloadLink, Export]:
    """The live link for `token` and its export; `NotFound` if unknown, `LinkExpired` if expired or revoked."""
    link = session.exec(select(DownloadLink).where(DownloadLink.token_hash == hash_token(token))).first()
    if link is None:
        raise NotFound("unknown download link")
    if link.revoked:
        raise LinkExpired("this download link has been revoked")
    if link.expires_at <= utcnow():
        raise LinkExpired(f"this download link expired at {link.expires_at.isoformat()}")
    return link, session.get(Export, link.export_id)


class HttpLinkDelivery:
    """Delivers by issuing a download link; the file itself stays in the artifact store."""

    def deliver(self, session: Session, artifact: Artifact, target: ExportTarget) -> dict[str, Any]:
        config = HttpLinkConfig.model_validate(target.config or {})
        link = issue_link(
            session, export_id=artifact.export_id, target_id=target.id,
            ttl_hours=config.ttl_hours or get_settings().link_ttl_hours,
            byte_rate_limit=config.byte_rate_limit, download_quota=config.download_quota,
        )
        return {"link_id": link.id, "expires_at": link.expires_at.isoformat(), "bytes": artifact.bytes,
                "sha256": artifact.sha256}
