"""Where rendered files live: a directory under GEOSHIP_HOME by default."""

from __future__ import annotations

from pathlib import Path

from models.settings import get_settings


def artifact_path(export_id: int) -> Path:
    """The local path of an export's GeoTIFF in the artifact store."""
    return get_settings().resolved_artifacts_dir() / f"export-{export_id}" / f"export-{export_id}.tif"
