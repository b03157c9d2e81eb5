"""S3 for delivery and the artifact store: a client per credential, uploads that S3 accepts at any size,
and S3's errors turned into ours.

Uploads are ours rather than boto3's managed transfer because we need to know the part size: it decides the
multipart ETag that verifies the object afterwards, and it must respect S3's limits (parts of 5 MiB to
5 GiB, at most 10,000 of them). Transient errors are retried by botocore's standard retry mode
(exponential backoff with jitter); a failed multipart upload is aborted so no parts linger in the bucket.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from delivery.names import media_type_of
from models.errors import CredentialRefused, PermanentDeliveryError, RetryableDeliveryError

MIN_PART = 5 * 1024**2
MAX_PART = 5 * 1024**3
MAX_PARTS = 10_000
MAX_SINGLE_PUT = 5 * 1024**3

_REFUSED_CREDENTIAL = {
    "InvalidAccessKeyId": "the access key id is not known to the service",
    "SignatureDoesNotMatch": "the secret access key does not match the access key id",
    "InvalidToken": "the session token is malformed or invalid",
    "ExpiredToken": "the session token has expired",
    "InvalidClientTokenId": "the access key id is not known to the service",
}
_PERMANENT = {
    "NoSuchBucket": "the bucket does not exist",
    "AccessDenied": "access denied",
    "AllAccessDisabled": "access to the bucket is disabled",
    "InvalidBucketName": "the bucket name is not valid",
    "AccessControlListNotSupported": "the bucket does not accept ACLs",
    "InvalidRequest": "the request was refused",
    "EntityTooLarge": "the object is larger than S3 accepts",
    "EntityTooSmall": "a part is smaller than S3 accepts",
    "BadDigest": "the uploaded bytes did not match their checksum",
    "404": "the bucket does not exist",
    "403": "access denied",
    "400": "the request was refused",
}


def s3_client(*, access_key_id: str | None = None, secret_access_key: str | None = None,
              session_token: str | None = None, region: str | None = None, endpoint_url: str | None = None,
              attempts: int = 5):
    """A boto3 S3 client; without keys it uses the standard AWS credential chain."""
    config = Config(
        retries={"mode": "standard", "total_max_attempts": attempts},  # the first try included
        connect_timeout=10, read_timeout=120, signature_version="s3v4",
        # S3-compatible stores on a host name of their own generally want path-style addressing.
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        # Only the checksums we choose (Content-MD5 per part), so any S3-compatible store understands them.
        request_checksum_calculation="when_required", response_checksum_validation="when_required",
    )
    # A session of its own: the default one would keep the credential chain it first resolved (keys unset here).
    return boto3.session.Session().client(
        "s3", aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
        aws_session_token=session_token, region_name=region, endpoint_url=endpoint_url, config=config,
    )


def delivery_error(exc: Exception, doing: str):
    """Our error for a boto3 failure while `doing` (e.g. "writing s3://b/k"); the message has no secrets."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _REFUSED_CREDENTIAL:
            return CredentialRefused(f"S3 refused the credential {doing}: {_REFUSED_CREDENTIAL[code]}")
        if code in _PERMANENT:
            return PermanentDeliveryError(f"S3 refused {doing}: {_PERMANENT[code]} ({code})")
        if status and 400 <= status < 500 and status not in (408, 429):
            return PermanentDeliveryError(f"S3 refused {doing}: {code or status}")
        return RetryableDeliveryError(f"S3 failed {doing} after retries: {code or status}")
    if isinstance(exc, EndpointConnectionError):
        return RetryableDeliveryError(f"S3 is unreachable {doing}: cannot connect to {exc.kwargs.get('endpoint_url')}")
    if isinstance(exc, BotoCoreError):
        return RetryableDeliveryError(f"S3 failed {doing}: {type(exc).__name__}")
    return exc


def part_size_for(size: int, preferred: int) -> int:
    """A part size within S3's limits that needs at most 10,000 parts for `size` bytes."""
    return min(MAX_PART, max(MIN_PART, preferred, math.ceil(size / MAX_PARTS)))


def _chunks(path: Path, part_size: int) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(part_size):
            yield chunk


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


@dataclass(frozen=True)
class Uploaded:
    """An object written to S3, as verified by reading its metadata back."""

    bucket: str
    key: str
    bytes: int
    etag: str
    parts: int


def upload_file(client, path: Path, bucket: str, key: str, *, sha256: str, threshold: int, part_size: int,
                acl: str | None = None) -> Uploaded:
    """Upload `path` to s3://bucket/key and verify it; raises our delivery errors, never leaves parts behind.

    Each part carries its MD5 (S3 rejects corrupted parts); afterwards the object's size and ETag (the MD5,
    or for multipart the MD5 of the parts' MD5s with the part count) are checked against the file. The
    file's SHA-256 is stored as the object's `sha256` metadata for whoever reads it later.
    """
    size = path.stat().st_size
    extra = {"Metadata": {"sha256": sha256}, "ContentType": media_type_of(path.name), **({"ACL": acl} if acl else {})}
    where = f"s3://{bucket}/{key}"
    if size <= min(threshold, MAX_SINGLE_PUT):
        data = path.read_bytes()
        try:
            client.put_object(Bucket=bucket, Key=key, Body=data, ContentMD5=md5_b64(data), **extra)
        except Exception as exc:
            raise delivery_error(exc, f"writing {where}") from None
        expected, parts = hashlib.md5(data).hexdigest(), 1
    else:
        expected, parts = _multipart(client, path, bucket, key, part_size_for(size, part_size), extra, where)
    return _verify(client, bucket, key, size, expected, parts)


def _multipart(client, path: Path, bucket: str, key: str, part_size: int, extra: dict, where: str) -> tuple[str, int]:
    try:
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
    except Exception as exc:
        raise delivery_error(exc, f"starting a multipart upload to {where}") from None
    digests, completed = [], []
    try:
        for number, chunk in enumerate(_chunks(path, part_size), start=1):
            answer = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk,
                                        ContentMD5=md5_b64(chunk))
            digests.append(hashlib.md5(chunk).digest())
            completed.append({"PartNumber": number, "ETag": answer["ETag"]})
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": completed})
    except BaseException as exc:
        abort_upload(client, bucket, key, upload_id)
        if isinstance(exc, Exception):
            raise delivery_error(exc, f"writing {where}") from None
        raise
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}", len(digests)


def abort_upload(client, bucket: str, key: str, upload_id: str) -> None:
    """Abort a multipart upload so its parts are freed; best effort (the failure that led here matters more)."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except Exception:  # a lifecycle rule on the bucket is the backstop for an abort that cannot get through
        pass


def _verify(client, bucket: str, key: str, size: int, expected_etag: str, parts: int) -> Uploaded:
    where = f"s3://{bucket}/{key}"
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise delivery_error(exc, f"reading back {where}") from None
    etag = head["ETag"].strip('"')
    if head["ContentLength"] != size:
        raise RetryableDeliveryError(f"{where} holds {head['ContentLength']} bytes after upload, expected {size}")
    # With SSE-KMS the ETag is not an MD5; then the per-part Content-MD5 checks are the integrity guarantee.
    kms = head.get("ServerSideEncryption") == "aws:kms"
    if not kms and etag != expected_etag:
        raise RetryableDeliveryError(f"{where} has ETag {etag} after upload, expected {expected_etag}")
    return Uploaded(bucket=bucket, key=key, bytes=size, etag=etag, parts=parts)
