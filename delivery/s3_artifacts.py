"""The artifact store in an S3 bucket (GEOSHIP_ARTIFACTS_URL=s3://bucket/prefix), with the machine's standard AWS
environment for credentials."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from boto3.s3.transfer import TransferConfig

from delivery.artifacts import READ_CHUNK, ObjectLocation
from delivery.names import artifact_name
from delivery.s3 import delivery_error, s3_client, upload_file
from models.errors import InvalidRequest
from models.settings import get_settings


class S3ArtifactStore:
    """A bucket and prefix, with credentials from the standard AWS environment of the machine."""

    def __init__(self, url: str, endpoint_url: str | None, staging_root: Path):
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise InvalidRequest("GEOSHIP_ARTIFACTS_URL", f"expected s3://bucket/prefix, got {url!r}")
        self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
        self.staging_root, self.endpoint_url = staging_root, endpoint_url
        self.client = s3_client(endpoint_url=endpoint_url, attempts=get_settings().delivery_attempts)

    def _key(self, export_id: int, filename: str | None = None) -> str:
        name = f"export-{export_id}/{filename or artifact_name(export_id)}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _split(self, uri: str) -> tuple[str, str]:
        parsed = urlparse(uri)
        return parsed.netloc, parsed.path.lstrip("/")

    def staging_path(self, export_id: int) -> Path:
        return self.staging_root / f"export-{export_id}" / artifact_name(export_id)

    def publish(self, export_id: int, staged: Path, sha256: str) -> str:
        settings = get_settings()
        key = self._key(export_id, staged.name)
        upload_file(self.client, staged, self.bucket, key, sha256=sha256, threshold=settings.s3_multipart_threshold,
                    part_size=settings.s3_part_size)
        shutil.rmtree(staged.parent, ignore_errors=True)
        return f"s3://{self.bucket}/{key}"

    def upload_location(self, export_id: int, suffix: str = ".tif") -> ObjectLocation | None:
        return ObjectLocation(self.bucket, self._key(export_id, artifact_name(export_id, suffix)), self.endpoint_url)

    def adopt(self, export_id: int, uri: str) -> str:
        expected = self.upload_location(export_id, Path(uri).suffix)
        if uri != f"s3://{expected.bucket}/{expected.key}":
            raise ValueError(f"{uri} is not where export {export_id} uploads")
        shutil.rmtree(self.staging_path(export_id).parent, ignore_errors=True)
        return uri

    def put_sidecar(self, export_id: int, name: str, data: bytes) -> str:
        key = self._key(export_id).rsplit("/", 1)[0] + "/" + name
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/geo+json")
        except Exception as exc:
            raise delivery_error(exc, f"writing s3://{self.bucket}/{key}") from None
        return f"s3://{self.bucket}/{key}"

    def copy_artifact(self, uri: str, export_id: int) -> str:
        bucket, key = self._split(uri)
        target = self._key(export_id)
        settings = get_settings()
        # A server-side copy (in parts above the threshold): the bytes stay in the store.
        config = TransferConfig(multipart_threshold=settings.s3_multipart_threshold, multipart_chunksize=settings.s3_part_size)
        try:
            self.client.copy({"Bucket": bucket, "Key": key}, self.bucket, target, Config=config)
        except Exception as exc:
            raise delivery_error(exc, f"copying {uri} to s3://{self.bucket}/{target}") from None
        return f"s3://{self.bucket}/{target}"

    def remove_unfinished(self, export_id: int) -> int:
        # The export's own folder (the slash keeps export-1 from matching export-12).
        folder = self._key(export_id).rsplit("/", 1)[0] + "/"
        removed = 0
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder):
                for item in page.get("Contents", []):
                    if item["Key"].endswith(".partial"):
                        self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                        removed += 1
            # An upload never completed keeps its parts, billed, until it is aborted.
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=folder):
                for upload in page.get("Uploads", []):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    removed += 1
        except Exception as exc:
            raise delivery_error(exc, f"removing unfinished uploads under s3://{self.bucket}/{folder}") from None
        return removed

    def size(self, uri: str) -> int | None:
        bucket, key = self._split(uri)
        try:
            return self.client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise delivery_error(exc, f"reading the artifact {uri}") from None

    def read(self, uri: str, start: int, end: int) -> Iterator[bytes]:
        bucket, key = self._split(uri)
        try:
            body = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")["Body"]
        except Exception as exc:
            raise delivery_error(exc, f"reading the artifact {uri}") from None
        try:
            yield from body.iter_chunks(READ_CHUNK)
        finally:
            body.close()

    @contextmanager
    def local_copy(self, uri: str) -> Iterator[Path]:
        bucket, key = self._split(uri)
        self.staging_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="geoship-artifact-", dir=self.staging_root) as tmp:
            path = Path(tmp) / Path(key).name
            try:
                self.client.download_file(bucket, key, str(path))
            except Exception as exc:
                raise delivery_error(exc, f"reading the artifact {uri}") from None
            yield path
