"""The artifact store: where rendered files live between rendering and delivery.

A local directory under GEOSHIP_HOME by default; an S3 bucket in production (GEOSHIP_ARTIFACTS_URL=
s3://bucket/prefix), so that a delivery or a download served on another machine can read what was rendered.
Renders are written to a local staging path first (the COG writer needs a seekable file), then published.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from delivery.names import artifact_name
from models.settings import get_settings

READ_CHUNK = 1024 * 1024


class ArtifactStore(Protocol):
    """Stores rendered files by export and hands them back whole, by byte range, or as a local file."""

    def staging_path(self, export_id: int) -> Path:
        """The local path the renderer writes to."""

    def publish(self, export_id: int, staged: Path, sha256: str) -> str:
        """Make the staged file the export's artifact; returns its URI."""

    def upload_location(self, export_id: int, suffix: str = ".tif") -> ObjectLocation | None:
        """Where the renderer may upload the export's deliverable itself (an object store), or None (it writes
        the staging path); `suffix`: .tif for a COG, .zip for a package."""

    def adopt(self, export_id: int, uri: str) -> str:
        """Take the object the renderer uploaded to `upload_location` as the export's artifact; returns its URI."""

    def put_sidecar(self, export_id: int, name: str, data: bytes) -> str:
        """Store a small file beside the export's artifact (its STAC item); returns its URI."""

    def copy_artifact(self, uri: str, export_id: int) -> str:
        """Make a stored single COG (another export's) this export's artifact too, without reading it through
        this process; returns its URI."""

    def size(self, uri: str) -> int | None:
        """The stored file's size in bytes, or None when it is not there."""

    def read(self, uri: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes start..end (inclusive) of the stored file, in chunks."""

    def local_copy(self, uri: str):
        """A context manager yielding a local path of the stored file."""

    def remove_unfinished(self, export_id: int) -> int:
        """Remove what a run of the export that died left in the store: temporary `.partial` files or objects and
        uploads never completed (never the artifact or its sidecars). Returns how many were removed."""


@dataclass(frozen=True)
class ObjectLocation:
    """An object in the artifact store's bucket, and the endpoint that serves it."""

    bucket: str
    key: str
    endpoint_url: str | None


class LocalArtifactStore:
    """A directory: the render is written in place, so publishing is a no-op."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def staging_path(self, export_id: int) -> Path:
        return self.root / f"export-{export_id}" / artifact_name(export_id)

    def publish(self, export_id: int, staged: Path, sha256: str) -> str:
        return str(staged)

    def upload_location(self, export_id: int, suffix: str = ".tif") -> ObjectLocation | None:
        return None

    def adopt(self, export_id: int, uri: str) -> str:
        raise ValueError("a local artifact store has no uploads to adopt")

    def put_sidecar(self, export_id: int, name: str, data: bytes) -> str:
        path = self.staging_path(export_id).with_name(name)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        partial.replace(path)  # readers never see half a file
        return str(path)

    def copy_artifact(self, uri: str, export_id: int) -> str:
        target = self.staging_path(export_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.unlink(missing_ok=True)
        try:
            os.link(uri, partial)  # the same bytes under a second name: nothing copied; files are never rewritten
        except OSError:  # another file system, or one without hard links
            shutil.copyfile(uri, partial)
        partial.replace(target)
        return str(target)

    def size(self, uri: str) -> int | None:
        path = Path(uri)
        return path.stat().st_size if path.is_file() else None

    def read(self, uri: str, start: int, end: int) -> Iterator[bytes]:
        with open(uri, "rb") as handle:
            handle.seek(start)
            remaining = end - start + 1
            while remaining > 0 and (chunk := handle.read(min(READ_CHUNK, remaining))):
                remaining -= len(chunk)
                yield chunk

    @contextmanager
    def local_copy(self, uri: str) -> Iterator[Path]:
        yield Path(uri)

    def remove_unfinished(self, export_id: int) -> int:
        partials = list(self.staging_path(export_id).parent.glob("*.partial"))
        for partial in partials:
            partial.unlink(missing_ok=True)
        return len(partials)


def artifact_store() -> ArtifactStore:
    """The configured artifact store."""
    settings = get_settings()
    if settings.artifacts_url:
        # boto3 is imported only when a bucket is configured: commands that read rows stay quick to start.
        from delivery.s3_artifacts import S3ArtifactStore

        return S3ArtifactStore(settings.artifacts_url, settings.artifacts_endpoint_url, Path(settings.home) / "staging")
    return LocalArtifactStore(settings.resolved_artifacts_dir())


def read_whole(store: ArtifactStore, uri: str) -> bytes:
    """A small stored file (a sidecar) whole."""
    size = store.size(uri)
    if size is None:
        raise FileNotFoundError(uri)
    return b"".join(store.read(uri, 0, size - 1)) if size else b""
