"""Request and response schemas shared by the HTTP API and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.status import ExportStatus, TargetKind, TargetStatus

TOOL_NAMES = ("rgb", "ndvi", "ndwi")
RESAMPLING_METHODS = (
    "nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode", "min", "max", "med", "q1", "q3",
)


class HttpLinkConfig(BaseModel):
    """Settings of an HTTP download link; unset ones take the server's defaults."""

    model_config = ConfigDict(extra="forbid")
    ttl_hours: float | None = Field(default=None, gt=0, le=24 * 365)
    byte_rate_limit: int | None = Field(default=None, gt=0)  # bytes per second
    download_quota: int | None = Field(default=None, gt=0)  # number of downloads


class TargetRequest(BaseModel):
    """One delivery target of an export request."""

    model_config = ConfigDict(extra="forbid")
    kind: TargetKind = TargetKind.http
    # Non-secret settings: for http, link ttl_hours, byte_rate_limit, download_quota.
    config: dict[str, Any] = Field(default_factory=dict)
    credential_id: int | None = None


class StretchRequest(BaseModel):
    """An explicit stretch for one band."""

    model_config = ConfigDict(extra="forbid")
    band: str
    min: float
    max: float


class ColorCorrection(BaseModel):
    """Colour correction: explicit per-band stretches, or percentiles computed once for the export."""

    model_config = ConfigDict(extra="forbid")
    stretch: list[StretchRequest] | None = None
    percentiles: tuple[float, float] = (2.0, 98.0)
    gamma: float = Field(default=1.0, gt=0.05, le=10.0)

    @field_validator("percentiles")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 <= low < high <= 100:
            raise ValueError("percentiles must satisfy 0 <= low < high <= 100")
        return value


class ExportRequest(BaseModel):
    """What a user asks for: a project through a named tool, over an AOI, on an output grid, delivered."""

    model_config = ConfigDict(extra="forbid")
    project: str | int
    tool: Literal[TOOL_NAMES] = "rgb"  # type: ignore[valid-type]
    bands: list[str] | None = None
    color_correct: ColorCorrection | None = None
    aoi: dict[str, Any] | None = None
    aoi_crs: str = "EPSG:4326"
    srid: int = 3857
    resolution: float | None = Field(default=None, gt=0)
    resampling: Literal[RESAMPLING_METHODS] = "nearest"  # type: ignore[valid-type]
    targets: list[TargetRequest] = Field(default_factory=lambda: [TargetRequest()], min_length=1)


class TargetView(BaseModel):
    """A target as shown to its owner."""

    id: int
    kind: TargetKind
    status: TargetStatus
    result: dict[str, Any] | None
    error: str | None


class ExportView(BaseModel):
    """An export as shown to its owner (CLI `--json`, `geoship status`, the API)."""

    id: int
    status: ExportStatus
    progress: float
    tiles_done: int
    tiles_total: int
    error: str | None
    artifact: str | None
    project_id: int | None
    output_srid: int
    resolution: float
    width: int | None
    height: int | None
    flow_run_id: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    targets: list[TargetView]
