"""What a deliverable is called and what it is: its file name from where it is stored, its media type."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

MEDIA_TYPES = {".tif": "image/tiff", ".zip": "application/zip", ".json": "application/geo+json", ".png": "image/png"}


def artifact_name(export_id: int, suffix: str = ".tif") -> str:
    """The file name of an export's deliverable, wherever it is stored or delivered: a GeoTIFF, or a ZIP of shards."""
    return f"export-{export_id}{suffix}"


def name_of(uri: str) -> str:
    """The file name of a stored artifact, from its path or s3:// URI."""
    return Path(urlparse(uri).path).name


def media_type_of(name: str) -> str:
    """The media type of a deliverable or a sidecar by its name (a manifest is JSON, a STAC item GeoJSON)."""
    if name.endswith(".manifest.json"):
        return "application/json"
    return MEDIA_TYPES.get(Path(name).suffix, "application/octet-stream")
