"""Request and response schemas shared by the HTTP API and the CLI."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, StrictInt, StrictStr, field_validator, model_validator

from models.status import CredentialKind, ExportStatus, Priority, TargetKind, TargetStatus
from models.tooltree import INDICES, RESAMPLING_METHODS

# A tool as a request names it: a built-in one, or a saved tool by name or owner/name (models.saved_tools).
TOOL_REF = r"^(?:[^/\s]{1,64}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# The named tools: plain or colour-corrected RGB, and every named index of the registry.
TOOL_NAMES = ("rgb", *INDICES)
COMPRESSIONS = ("deflate", "zstd", "lzw", "jpeg", "webp")
# Lossy codecs, for 8-bit RGB only (validity then goes into an internal mask).
LOSSY_COMPRESSIONS = ("jpeg", "webp")


class HttpLinkConfig(BaseModel):
    """Settings of an HTTP download link; unset ones take the server's defaults."""

    model_config = ConfigDict(extra="forbid")
    ttl_hours: float | None = Field(default=None, gt=0, le=24 * 365)
    byte_rate_limit: int | None = Field(default=None, gt=0)  # bytes per second
    download_quota: int | None = Field(default=None, gt=0)  # number of downloads


_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


_TOKEN_TEXT = re.compile(r"^[\x21-\x7e]{1,4096}$")


def _token_text(value: SecretStr | None) -> SecretStr | None:
    """Keys and tokens are printable ASCII without spaces: anything else cannot be sent in an HTTP header."""
    if value is not None and not _TOKEN_TEXT.match(value.get_secret_value()):
        raise ValueError("must be printable ASCII without spaces (as keys and tokens are)")
    return value


class S3TargetConfig(BaseModel):
    """Where in the user's bucket the file goes: s3://bucket/prefix/export-<id>.tif."""

    model_config = ConfigDict(extra="forbid")
    bucket: str
    prefix: str = ""
    # Grant the bucket owner full control of the object: True, False, or None to decide by checking
    # whether the credential's account owns the bucket.
    owner_full_control: bool | None = None

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET_NAME.match(value) or ".." in value:
            raise ValueError(f"{value!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return value.strip("/")

    def key_for(self, filename: str) -> str:
        """The object key of `filename` under this target's prefix."""
        return f"{self.prefix}/{filename}" if self.prefix else filename


class DropboxTargetConfig(BaseModel):
    """The Dropbox folder the file goes into: <folder>/export-<id>.tif."""

    model_config = ConfigDict(extra="forbid")
    folder: str = "/geoship"

    @field_validator("folder")
    @classmethod
    def _folder(cls, value: str) -> str:
        value = "/" + value.strip("/")
        if "//" in value or any(part in (".", "..") for part in value.split("/")):
            raise ValueError(f"{value!r} is not a usable Dropbox folder path")
        return value.rstrip("/")

    def path_for(self, filename: str) -> str:
        """The Dropbox path of `filename` in this folder."""
        return f"{self.folder}/{filename}"


class S3Secret(BaseModel):
    """The secret part of an S3 credential."""

    # Validation errors must never echo a secret back (pydantic includes the input by default).
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    access_key_id: SecretStr
    secret_access_key: SecretStr
    session_token: SecretStr | None = None

    _tokens = field_validator("access_key_id", "secret_access_key", "session_token")(_token_text)


def _endpoint_url(value: str | None) -> str | None:
    """An http(s) URL with a host, or None."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise ValueError(f"{value!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL with a host")
    return value.rstrip("/")


class S3CredentialConfig(BaseModel):
    """The non-secret part of an S3 credential: where the service is."""

    model_config = ConfigDict(extra="forbid")
    region: str = Field(default="us-east-1", pattern=r"^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$")
    # For S3-compatible stores (MinIO, SeaweedFS, Ceph); AWS itself needs none.
    endpoint_url: str | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return _endpoint_url(value)


def _require_a_dropbox_token(model) -> None:
    has_token = model.access_token is not None and model.access_token.get_secret_value()
    has_refresh = model.refresh_token is not None and model.refresh_token.get_secret_value() and model.app_key
    if not (has_token or has_refresh):
        raise ValueError("a Dropbox credential needs an access token, or a refresh token with its app key")


class DropboxSecret(BaseModel):
    """The secret part of a Dropbox credential: a long-lived access token, or a refresh token with its app key."""

    # Validation errors must never echo a secret back (pydantic includes the input by default).
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    access_token: SecretStr | None = None
    refresh_token: SecretStr | None = None
    app_key: str | None = Field(default=None, pattern=r"^[\x21-\x7e]{1,256}$")
    app_secret: SecretStr | None = None

    _tokens = field_validator("access_token", "refresh_token", "app_secret")(_token_text)

    @model_validator(mode="after")
    def _one_way_in(self) -> DropboxSecret:
        _require_a_dropbox_token(self)
        return self


class CredentialView(BaseModel):
    """A credential as shown to its owner: never the secret, only a hint to tell credentials apart."""

    id: int
    kind: CredentialKind
    label: str
    hint: str
    config: dict[str, Any]
    created_at: datetime


class TargetRequest(BaseModel):
    """One delivery target of an export request."""

    model_config = ConfigDict(extra="forbid")
    kind: TargetKind = TargetKind.http
    # Non-secret settings: HttpLinkConfig, S3TargetConfig or DropboxTargetConfig, by kind.
    config: dict[str, Any] = Field(default_factory=dict)
    credential_id: int | None = Field(default=None, ge=1, le=2**63 - 1)


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
    """What a user asks for: a project through a named tool (or a tool tree of their own), over an AOI,
    on an output grid, delivered to one or more targets."""

    model_config = ConfigDict(extra="forbid")
    # The project of a named tool; with a `tool_tree`, the project of the leaves that name none (optional).
    project: str | int | None = None
    # A built-in tool (rgb or a named index), or a saved tool by name (or owner/name) whose slots `bind` fills.
    tool: str = Field(default="rgb", pattern=TOOL_REF, examples=list(TOOL_NAMES))
    bind: dict[str, StrictStr | StrictInt] | None = Field(default=None, max_length=64)
    # A tool tree of your own instead of a named tool: nodes as in models.tooltree. Its leaves name the project
    # (`{"type": "project", "project": "naip-2014", "bands": [...]}`) or scene (`{"type": "scene", "scene": 12,
    # ...}`) they read. Without an `output` root, the result is float32 with nodata -9999 (a colour map: RGBA
    # uint8).
    tool_tree: dict[str, Any] | None = None
    bands: list[str] | None = None
    color_correct: ColorCorrection | None = None
    aoi: dict[str, Any] | None = None
    aoi_crs: str = "EPSG:4326"
    # "aoi": the output is cropped to the AOI's bounds; "project": it keeps the project's whole extent, with
    # every pixel outside the AOI nodata (so exports of different AOIs line up on one raster).
    extent: Literal["aoi", "project"] = "aoi"
    srid: int = 3857
    resolution: float | None = Field(default=None, gt=0)
    # None: nearest for plain RGB, bilinear for colour-corrected pictures and indices (flows.services.submission).
    resampling: Literal[RESAMPLING_METHODS] | None = None  # type: ignore[valid-type]
    compression: Literal[COMPRESSIONS] = "deflate"  # type: ignore[valid-type]
    targets: list[TargetRequest] = Field(default_factory=lambda: [TargetRequest()], min_length=1, max_length=10)
    # None: interactive when the output is small (GEOSHIP_INTERACTIVE_MAX_BYTES uncompressed), else bulk.
    priority: Priority | None = None
    # POSTed a signed event on each status change (default: your account's webhook URL, if any).
    webhook_url: str | None = Field(default=None, max_length=2048)

    def uses_saved_tool(self) -> bool:
        return self.tool_tree is None and self.tool not in TOOL_NAMES

    @model_validator(mode="after")
    def _one_kind_of_tool(self) -> ExportRequest:
        if self.tool_tree is None and self.project is None and not self.uses_saved_tool():
            raise ValueError("give a `project` for a named tool, or a `tool_tree` (or a saved tool) whose leaves name "
                             "their projects")
        named = [f for f in ("bands", "color_correct") if getattr(self, f) is not None]
        if self.tool_tree is not None and self.tool != "rgb":
            named.insert(0, "tool")
        if named and (self.tool_tree is not None or self.uses_saved_tool()):
            what = "a tool_tree" if self.tool_tree is not None else f"the saved tool {self.tool!r}"
            raise ValueError(f"{what} says what to compute itself; drop {', '.join(named)} (they set up a "
                             f"built-in tool)")
        if self.bind is not None and not self.uses_saved_tool():
            raise ValueError("`bind` fills the slots of a saved tool; this request does not name one")
        return self


class SourceView(BaseModel):
    """One leaf of an export's tool tree: what it reads."""

    node: str  # its path in the tree, as error messages name it
    kind: Literal["project", "scene"]
    project_id: int | None = None
    project: str | None = None
    scene_id: int | None = None
    slot: str | None = None  # the saved tool's slot the project was bound to
    scenes: list[str]  # the scenes read, in mosaic order (first valid pixel wins)
    bands: list[str]
    resampling: str


class Estimate(BaseModel):
    """The preflight of an export request: what it would render, known before anything is written."""

    width: int
    height: int
    pixels: int
    bands: list[str]
    dtype: str
    bytes: int  # uncompressed
    # Files the output is split into (1: one COG; more: shards of one grid, delivered as one ZIP).
    shards: int = 1
    limit_bytes: int
    within_limit: bool
    output_srid: int
    resolution: float
    # The leaves of the tree and what each reads.
    sources: list[SourceView] = Field(default_factory=list)
    # How the queue would start it: as asked, else interactive when small (GEOSHIP_INTERACTIVE_MAX_BYTES).
    priority: Priority = Priority.bulk
    # An earlier export of yours with the same tool tree, grid, compression and unchanged inputs, whose file it
    # would reuse: delivered without rendering.
    reuses_export: int | None = None


class TargetView(BaseModel):
    """A target as shown to its owner."""

    id: int
    kind: TargetKind
    status: TargetStatus
    result: dict[str, Any] | None
    error: str | None


class QueueView(BaseModel):
    """Where a pending export stands in the queue."""

    position: int  # 1: the next to start
    of: int  # pending exports in all
    waiting_for: str
    priority: Priority


class LogLineView(BaseModel):
    """One line of an export's own log."""

    at: datetime
    level: str
    message: str


class ExportView(BaseModel):
    """An export as shown to its owner (CLI `--json`, `geoship status`, the API)."""

    id: int
    status: ExportStatus
    compression: str
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
    # Scenes that lack a band the export reads (they contribute nothing to it), by band.
    skipped_scenes: dict[str, list[str]] = Field(default_factory=dict)
    priority: Priority = Priority.bulk
    # While pending: its place in the queue and what it waits for.
    queue: QueueView | None = None
    # The earlier export whose identical render it reused (nothing was rendered), once rendered.
    reused_from: int | None = None
    webhook_url: str | None = None
    # Only in the answer to the request that had to make your webhook signing secret: shown this once.
    webhook_secret: str | None = None


class WebhookRequest(BaseModel):
    """Your account's webhook: the URL that exports naming none of their own notify (null: none)."""

    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(max_length=2048)


class WebhookView(BaseModel):
    """Your account's webhook settings. `secret` is shown once, in the answer that made it."""

    url: str | None
    secret_hint: str
    secret: str | None = None
    created_at: datetime
    updated_at: datetime


class WebhookAttemptView(BaseModel):
    """One POST of one of an export's status changes to its webhook."""

    event: str
    attempt: int
    at: datetime
    host: str
    status_code: int | None
    ok: bool
    error: str | None
    duration_ms: int
    final: bool


class ExportPage(BaseModel):
    """One page of a user's exports, newest first."""

    items: list[ExportView]
    total: int
    limit: int
    offset: int


class S3CredentialRequest(S3Secret, S3CredentialConfig):
    """A new S3 credential (its secret and where the service is), checked against `bucket` and `prefix`."""

    kind: Literal["s3"]
    label: str = Field(min_length=1, max_length=100)
    bucket: str
    prefix: str = ""

    def secret(self) -> S3Secret:
        return S3Secret.model_validate(self.model_dump(include=set(S3Secret.model_fields)))

    def config(self) -> S3CredentialConfig:
        return S3CredentialConfig.model_validate(self.model_dump(include=set(S3CredentialConfig.model_fields)))


class DropboxCredentialRequest(DropboxSecret):
    """A new Dropbox credential, checked with Dropbox before it is stored."""

    kind: Literal["dropbox"]
    label: str = Field(min_length=1, max_length=100)

    def secret(self) -> DropboxSecret:
        return DropboxSecret.model_validate(self.model_dump(include=set(DropboxSecret.model_fields)))


class SceneView(BaseModel):
    """A scene as its readers see it (band names, not where the files are)."""

    id: int
    name: str
    owner: str
    visibility: str
    epsg: int | None
    bounds: list[float]
    footprint: dict[str, Any]
    width: int
    height: int
    resolution: tuple[float, float]
    dtype: str
    nodata: float | None
    bands: list[str]
    acquired_at: datetime | None


class ProjectView(BaseModel):
    """A project with its scenes in mosaic order (first wins)."""

    id: int
    name: str
    owner: str
    visibility: str
    scene_count: int
    scenes: list[SceneView] | None = None


class ToolCreate(BaseModel):
    """A tool to save: its name (what `--tool` takes), its tree (leaves name a project or leave a `slot` open)
    and what it is for."""

    model_config = ConfigDict(extra="forbid")
    name: str
    # Also taken as `tool_tree`, the name an export request gives a tree.
    tree: dict[str, Any] = Field(validation_alias=AliasChoices("tree", "tool_tree"))
    description: str = ""


class ToolShareRequest(BaseModel):
    """Who to share a saved tool with."""

    model_config = ConfigDict(extra="forbid")
    user: str


class ToolView(BaseModel):
    """A saved tool as its owner, or someone it is shared with, sees it."""

    id: int
    name: str
    owner: str
    # What to pass as `tool` (the name, or owner/name for a tool shared with you).
    ref: str
    description: str
    slots: list[str]
    tree: dict[str, Any]
    shared_with: list[str] | None = None  # only its owner sees who it is shared with
    created_at: datetime
    updated_at: datetime
