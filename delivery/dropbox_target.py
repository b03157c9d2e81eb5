"""Dropbox delivery: the user's Dropbox, with free space checked first and large files sent in chunks.

A file is committed only by its last request (`files/upload`, or `upload_session/finish`), so a failure
before that, including running out of space, leaves no partial file behind.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dropbox
from dropbox import exceptions as dbx_errors
from dropbox.files import CommitInfo, UploadSessionCursor, WriteMode
from requests.exceptions import RequestException
from sqlmodel import Session

from delivery.artifacts import artifact_store
from delivery.base import Artifact, parse_config
from delivery.credentials import get_credential, hint_of, open_secret, store_credential
from delivery.manifest import read_sidecars
from models.errors import (
    CredentialRefused,
    InsufficientSpace,
    InvalidRequest,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from models.schemas import DropboxSecret, DropboxTargetConfig, TargetRequest
from models.settings import get_settings
from models.status import CredentialKind
from models.tables import Credential, ExportTarget, User

HASH_BLOCK = 4 * 1024 * 1024


def content_hash(path: Path) -> str:
    """Dropbox's content hash: SHA-256 over the SHA-256 digests of each 4 MiB block."""
    digests = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digests.update(hashlib.sha256(block).digest())
    return digests.hexdigest()


def client_for(secret: DropboxSecret) -> dropbox.Dropbox:
    """A Dropbox client acting with the user's token (refreshed from the refresh token when given one)."""
    settings = get_settings()
    session = None
    if settings.dropbox_ca_certs:
        session = dropbox.create_session(ca_certs=str(settings.dropbox_ca_certs))
        session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would otherwise win over ca_certs
    reveal = lambda value: value.get_secret_value() if value is not None else None  # noqa: E731
    return dropbox.Dropbox(
        oauth2_access_token=reveal(secret.access_token), oauth2_refresh_token=reveal(secret.refresh_token),
        app_key=secret.app_key, app_secret=reveal(secret.app_secret), session=session,
        max_retries_on_error=settings.delivery_attempts - 1, max_retries_on_rate_limit=settings.delivery_attempts - 1,
        timeout=120,
    )


def _translate(exc: Exception, doing: str) -> Exception:
    """Our error for a Dropbox SDK failure while `doing`; never includes the token."""
    if isinstance(exc, dbx_errors.AuthError):
        tag = exc.error._tag if hasattr(exc.error, "_tag") else "refused"
        return CredentialRefused(f"Dropbox refused the credential {doing}: {tag.replace('_', ' ')}")
    if isinstance(exc, dbx_errors.BadInputError):
        return CredentialRefused(f"Dropbox refused the request {doing}: {exc.message}")
    if isinstance(exc, dbx_errors.ApiError):
        return PermanentDeliveryError(f"Dropbox refused {doing}: {exc.user_message_text or exc.error}")
    if isinstance(exc, (dbx_errors.InternalServerError, dbx_errors.RateLimitError, dbx_errors.HttpError, RequestException)):
        return RetryableDeliveryError(f"Dropbox failed {doing}: {type(exc).__name__}")
    return exc


@dataclass(frozen=True)
class Space:
    """A Dropbox account's space, in bytes."""

    used: int
    allocated: int

    @property
    def free(self) -> int:
        return max(0, self.allocated - self.used)


def space_of(client: dropbox.Dropbox) -> Space:
    """Used and allocated space of the account (the team's pool for a team account)."""
    try:
        usage = client.users_get_space_usage()
    except Exception as exc:
        raise _translate(exc, "reading the account's space usage") from None
    allocation = usage.allocation
    if allocation.is_individual():
        return Space(used=usage.used, allocated=allocation.get_individual().allocated)
    team = allocation.get_team()
    return Space(used=team.used, allocated=team.allocated)


def require_space(space: Space, needed: int, what: str) -> None:
    """`InsufficientSpace` with used, allocated and needed in the message when `needed` does not fit."""
    if needed > space.free:
        raise InsufficientSpace(
            f"the Dropbox has too little free space for {what}: {space.used:,} of {space.allocated:,} bytes used, "
            f"{space.free:,} free, {needed:,} needed"
        )


def _write_failure(error, doing: str, needed: int) -> Exception | None:
    """The WriteError inside an upload error, as our error; shapes differ between upload and finish."""
    write_error = None
    if error.is_path():
        path_error = error.get_path()
        write_error = getattr(path_error, "reason", path_error)  # UploadWriteFailed wraps it; finish does not
    if write_error is not None and write_error.is_insufficient_space():
        return InsufficientSpace(f"the Dropbox ran out of space {doing} ({needed:,} bytes needed); no file was left behind")
    return None


def upload(client: dropbox.Dropbox, path: Path, dropbox_path: str, *, threshold: int, chunk_size: int):
    """Upload `path` to `dropbox_path` (overwriting our earlier delivery there); returns the file's metadata."""
    size = path.stat().st_size
    doing = f"uploading to {dropbox_path}"
    mode = WriteMode.overwrite
    try:
        with open(path, "rb") as handle:
            if size <= threshold:
                return client.files_upload(handle.read(), dropbox_path, mode=mode, mute=True)
            session_id = client.files_upload_session_start(handle.read(chunk_size)).session_id
            cursor = UploadSessionCursor(session_id=session_id, offset=handle.tell())
            while size - handle.tell() > chunk_size:
                client.files_upload_session_append_v2(handle.read(chunk_size), cursor)
                cursor.offset = handle.tell()
            commit = CommitInfo(path=dropbox_path, mode=mode, mute=True)
            return client.files_upload_session_finish(handle.read(), cursor, commit)
    except dbx_errors.ApiError as exc:
        raise (_write_failure(exc.error, doing, size) or _translate(exc, doing)) from None
    except Exception as exc:
        raise _translate(exc, doing) from None


def add_dropbox_credential(session: Session, *, owner: User, label: str, secret: DropboxSecret) -> Credential:
    """Check that Dropbox accepts the token (by reading the space usage), then store the credential."""
    space_of(client_for(secret))
    visible = secret.app_key if secret.refresh_token is not None else secret.access_token.get_secret_value()
    hint = f"app {secret.app_key}" if secret.refresh_token is not None else f"token {hint_of(visible)}"
    return store_credential(session, owner=owner, kind=CredentialKind.dropbox, label=label, secret=secret,
                            config={}, hint=hint)


class DropboxDelivery:
    """Uploads the file to <folder>/export-<id>.tif in the user's Dropbox and checks its content hash."""

    def check(self, session: Session, *, owner_id: int, target: TargetRequest, field: str, estimate_bytes: int) -> None:
        parse_config(DropboxTargetConfig, target.config, f"{field}.config")
        credential = get_credential(session, owner_id=owner_id, credential_id=target.credential_id,
                                    kind=CredentialKind.dropbox, field=f"{field}.credential_id")
        space = space_of(client_for(open_secret(credential, DropboxSecret)))
        try:
            require_space(space, estimate_bytes, "this export (uncompressed estimate)")
        except InsufficientSpace as exc:
            raise InvalidRequest(f"{field}.credential_id", str(exc)) from None

    def deliver(self, session: Session, artifact: Artifact, target: ExportTarget) -> dict[str, Any]:
        config = DropboxTargetConfig.model_validate(target.config)
        client = self._client(session, target)
        require_space(space_of(client), artifact.bytes, artifact.filename)
        settings = get_settings()
        dropbox_path = config.path_for(artifact.filename)
        with artifact_store().local_copy(artifact.uri) as path:
            expected = content_hash(path)
            metadata = upload(client, path, dropbox_path, threshold=settings.dropbox_upload_threshold,
                              chunk_size=settings.dropbox_chunk_size)
        if metadata.size != artifact.bytes or metadata.content_hash != expected:
            try:  # a file that is not the export must not stay behind under the export's name
                client.files_delete_v2(dropbox_path)
            except Exception as exc:
                raise _translate(exc, f"removing the mismatched {dropbox_path}") from None
            raise RetryableDeliveryError(f"{dropbox_path} does not match the rendered file after upload "
                                         f"({metadata.size} bytes, content hash {metadata.content_hash})")
        sidecar_paths = []
        for sidecar in read_sidecars(list(artifact.sidecar_uris)):  # small: one request each
            sidecar_path = config.path_for(sidecar.name)
            try:
                client.files_upload(sidecar.data, sidecar_path, mode=WriteMode.overwrite, mute=True)
            except Exception as exc:
                raise _translate(exc, f"uploading {sidecar_path}") from None
            sidecar_paths.append(sidecar_path)
        return {"path": metadata.path_display or dropbox_path, "bytes": metadata.size, "content_hash": expected,
                "sha256": artifact.sha256, "rev": metadata.rev, "sidecars": sidecar_paths}

    def _client(self, session: Session, target: ExportTarget) -> dropbox.Dropbox:
        credential = session.get(Credential, target.credential_id) if target.credential_id else None
        if credential is None:
            raise InvalidRequest("credential_id", "the target's credential has been removed")
        return client_for(open_secret(credential, DropboxSecret))

    def verify(self, session: Session, artifact: Artifact, target: ExportTarget) -> str | None:
        result = target.result or {}
        try:
            metadata = self._client(session, target).files_get_metadata(result["path"])
        except Exception as exc:
            return f"{result.get('path')} cannot be read back from Dropbox: {_translate(exc, 'reading it back')}"
        if metadata.size != artifact.bytes or metadata.content_hash != result.get("content_hash"):
            return f"{result['path']} in Dropbox is not the rendered file ({metadata.size} bytes)"
        return None

    def cleanup(self, session: Session, target: ExportTarget) -> None:
        """Delete a file already delivered; an unfinished upload session commits nothing, so leaves nothing."""
        result = target.result or {}
        delivered = ([result["path"]] if result.get("path") else []) + result.get("sidecars", [])
        for path in delivered:
            try:
                self._client(session, target).files_delete_v2(path)
            except Exception as exc:
                raise _translate(exc, f"removing {path}") from None
