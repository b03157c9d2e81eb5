"""S3 delivery: the user's bucket and prefix, with the user's credential."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session

from delivery.artifacts import artifact_store
from delivery.base import Artifact, parse_config
from delivery.credentials import get_credential, hint_of, open_secret, store_credential
from delivery.manifest import Sidecar, read_sidecars
from delivery.names import media_type_of, name_of
from delivery.s3 import abort_upload, delivery_error, md5_b64, s3_client, upload_file
from models.errors import InvalidRequest
from models.schemas import S3CredentialConfig, S3Secret, S3TargetConfig, TargetRequest
from models.settings import get_settings
from models.status import CredentialKind
from models.tables import Credential, Export, ExportTarget, User

OWNER_FULL_CONTROL = "bucket-owner-full-control"


def client_for(secret: S3Secret, config: S3CredentialConfig):
    """A boto3 client acting with the user's credential, on an endpoint this server allows."""
    allowed = get_settings().s3_endpoint_hosts
    host = urlsplit(config.endpoint_url).hostname if config.endpoint_url else None
    if host is not None and allowed is not None and host not in allowed:
        raise InvalidRequest("endpoint_url", f"this server does not connect to S3 endpoints on {host!r} "
                                             f"(allowed: {', '.join(allowed) or 'none'})")
    return s3_client(
        access_key_id=secret.access_key_id.get_secret_value(),
        secret_access_key=secret.secret_access_key.get_secret_value(),
        session_token=secret.session_token.get_secret_value() if secret.session_token else None,
        region=config.region, endpoint_url=config.endpoint_url, attempts=get_settings().delivery_attempts,
    )


def check_bucket(client, bucket: str) -> None:
    """The bucket exists and the credential may reach it; a clear error otherwise.

    Asked before every write because some S3-compatible stores create a missing bucket on first PUT.
    """
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as exc:
        error = delivery_error(exc, f"checking bucket {bucket!r}")
        if getattr(exc, "response", {}).get("Error", {}).get("Code") == "403":
            error = _diagnose_forbidden(client, bucket) or error
        raise error from None


def _diagnose_forbidden(client, bucket: str):
    """HEAD answers 403 without a body; a GET says whether the key, the secret or the permission is wrong."""
    try:
        client.get_bucket_location(Bucket=bucket)
    except Exception as exc:
        return delivery_error(exc, f"checking bucket {bucket!r}")
    return None


def writer_owns_bucket(client, bucket: str) -> bool:
    """Whether the credential's account owns the bucket; False when it may not even read the bucket's ACL."""
    try:
        owner = client.get_bucket_acl(Bucket=bucket)["Owner"].get("ID")
        caller = client.list_buckets().get("Owner", {}).get("ID")
    except Exception:
        return False
    return owner is not None and owner == caller


def probe_write(client, bucket: str, prefix: str) -> None:
    """Write and delete a small object under `prefix`: the proof that deliveries there will work."""
    key = f"{prefix}/.geoship-probe-{uuid.uuid4().hex}" if prefix else f".geoship-probe-{uuid.uuid4().hex}"
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"geoship credential check")
        client.delete_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise delivery_error(exc, f"writing a probe object to s3://{bucket}/{key}") from None


def add_s3_credential(session: Session, *, owner: User, label: str, secret: S3Secret, config: S3CredentialConfig,
                      bucket: str, prefix: str = "") -> Credential:
    """Check the credential against `bucket` (it answers; a probe can be written and deleted), then store it."""
    target = parse_config(S3TargetConfig, {"bucket": bucket, "prefix": prefix}, "bucket")
    client = client_for(secret, config)
    check_bucket(client, target.bucket)
    probe_write(client, target.bucket, target.prefix)
    return store_credential(session, owner=owner, kind=CredentialKind.s3, label=label, secret=secret,
                            config=config.model_dump(exclude_none=True),
                            hint=hint_of(secret.access_key_id.get_secret_value()))


class S3Delivery:
    """Uploads the file to s3://bucket/prefix/export-<id>.tif and verifies it there."""

    def check(self, session: Session, *, owner_id: int, target: TargetRequest, field: str, estimate_bytes: int) -> None:
        parse_config(S3TargetConfig, target.config, f"{field}.config")
        get_credential(session, owner_id=owner_id, credential_id=target.credential_id, kind=CredentialKind.s3,
                       field=f"{field}.credential_id")

    def deliver(self, session: Session, artifact: Artifact, target: ExportTarget) -> dict[str, Any]:
        config = S3TargetConfig.model_validate(target.config)
        client = self._client(session, target)
        check_bucket(client, config.bucket)
        wants_acl = config.owner_full_control
        if wants_acl is None:
            wants_acl = not writer_owns_bucket(client, config.bucket)
        settings = get_settings()
        key = config.key_for(artifact.filename)
        acl = OWNER_FULL_CONTROL if wants_acl else None
        with artifact_store().local_copy(artifact.uri) as path:
            uploaded = upload_file(client, path, config.bucket, key, sha256=artifact.sha256,
                                   threshold=settings.s3_multipart_threshold, part_size=settings.s3_part_size, acl=acl)
        sidecar_keys = [self._put_sidecar(client, config.bucket, config.key_for(sidecar.name), sidecar, acl)
                        for sidecar in read_sidecars(list(artifact.sidecar_uris))]
        return {"url": f"s3://{config.bucket}/{key}", "bucket": config.bucket, "key": key, "bytes": uploaded.bytes,
                "etag": uploaded.etag, "parts": uploaded.parts, "sha256": artifact.sha256, "acl": acl,
                "sidecars": sidecar_keys}

    @staticmethod
    def _put_sidecar(client, bucket: str, key: str, sidecar: Sidecar, acl: str | None) -> str:
        """Write one sidecar (STAC, manifest) beside the delivered file; returns its key."""
        try:
            client.put_object(Bucket=bucket, Key=key, Body=sidecar.data, ContentType=media_type_of(sidecar.name),
                              ContentMD5=md5_b64(sidecar.data), **({"ACL": acl} if acl else {}))
        except Exception as exc:
            raise delivery_error(exc, f"writing s3://{bucket}/{key}") from None
        return key

    def _client(self, session: Session, target: ExportTarget):
        credential = session.get(Credential, target.credential_id) if target.credential_id else None
        if credential is None:
            raise InvalidRequest("credential_id", "the target's credential has been removed")
        return client_for(open_secret(credential, S3Secret), S3CredentialConfig.model_validate(credential.config))

    def verify(self, session: Session, artifact: Artifact, target: ExportTarget) -> str | None:
        result = target.result or {}
        where = f"s3://{result.get('bucket')}/{result.get('key')}"
        try:
            head = self._client(session, target).head_object(Bucket=result["bucket"], Key=result["key"])
        except Exception as exc:
            return f"{where} cannot be read back: {delivery_error(exc, 'reading it back')}"
        if head["ContentLength"] != artifact.bytes or head["ETag"].strip('"') != result.get("etag"):
            return f"{where} is not the rendered file ({head['ContentLength']} bytes, ETag {head['ETag']})"
        if head.get("Metadata", {}).get("sha256") != artifact.sha256:
            return f"{where} does not carry the rendered file's SHA-256"
        return None

    def cleanup(self, session: Session, target: ExportTarget) -> None:
        """Abort multipart uploads left under the target's key, and delete an object already delivered."""
        config = S3TargetConfig.model_validate(target.config)
        export = session.get(Export, target.export_id)
        if export is None or not export.artifact:
            return  # nothing was rendered, so nothing was uploaded
        key = config.key_for(name_of(export.artifact))
        client = self._client(session, target)
        try:
            uploads = client.list_multipart_uploads(Bucket=config.bucket, Prefix=key).get("Uploads", [])
            for upload in uploads:
                if upload["Key"] == key:
                    abort_upload(client, config.bucket, key, upload["UploadId"])
            if (target.result or {}).get("key") == key:
                client.delete_object(Bucket=config.bucket, Key=key)
            for sidecar_key in (target.result or {}).get("sidecars", []):
                client.delete_object(Bucket=config.bucket, Key=sidecar_key)
        except Exception as exc:
            raise delivery_error(exc, f"cleaning up s3://{config.bucket}/{key}") from None
