"""The database tables (SQLModel). One class per entity; schemas for input/output live in `schemas`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.status import CredentialKind, ExportStatus, Priority, TargetKind, TargetStatus
from models.timestamps import UTCDateTime, utcnow


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _json(default_factory=dict) -> Any:
    return Field(default_factory=default_factory, sa_column=Column(JSON, nullable=False))


class User(SQLModel, table=True):
    """A person or service with an API token (stored hashed)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    token_hash: str | None = Field(default=None, index=True)
    created_at: datetime = _created()


class Project(SQLModel, table=True):
    """An ordered mosaic of scenes, owned by one user."""

    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    owner_id: int = Field(foreign_key="user.id", index=True)
    visibility: str = "private"  # private | public
    created_at: datetime = _created()


class ProjectShare(SQLModel, table=True):
    """A project shared read-only with another user."""

    project_id: int = Field(foreign_key="project.id", primary_key=True)
    user_id: int = Field(foreign_key="user.id", primary_key=True)


class SceneShare(SQLModel, table=True):
    """A scene shared read-only with another user."""

    scene_id: int = Field(foreign_key="scene.id", primary_key=True)
    user_id: int = Field(foreign_key="user.id", primary_key=True)


class Scene(SQLModel, table=True):
    """One acquisition: a multi-band file or a set of single-band files on one grid.

    `bands` is a list of {"name", "uri", "index"} (index is 1-based within the file at `uri`), so a
    scene may be one RGBN GeoTIFF or Landsat's B4.TIF, B5.TIF, ... alike.
    """

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    owner_id: int = Field(foreign_key="user.id", index=True)
    visibility: str = "private"
    crs_wkt: str
    epsg: int | None = None
    bounds: list[float] = _json(list)  # left, bottom, right, top in the scene's CRS
    footprint: dict = _json()  # GeoJSON polygon in EPSG:4326
    width: int
    height: int
    res_x: float
    res_y: float
    dtype: str
    nodata: float | None = None
    bands: list[dict] = _json(list)
    acquired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # GeoJSON MultiPolygon in the scene's CRS holding every valid pixel (ray_render.data_area); None: unknown, or no
    # valid pixel at all (the scene is then read wherever its bounds reach).
    data_area: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = _created()


class ProjectScene(SQLModel, table=True):
    """Membership of a scene in a project; `position` is mosaic priority (0 wins over 1)."""

    project_id: int = Field(foreign_key="project.id", primary_key=True)
    scene_id: int = Field(foreign_key="scene.id", primary_key=True)
    position: int = Field(index=True)


class SavedTool(SQLModel, table=True):
    """A tool tree a user saved under a name, to export for any project: its leaves name a project or leave a
    `slot` open, bound at export time. `tree` is the tree as the user wrote it (leaves unbound)."""

    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="user.id", index=True)
    name: str = Field(index=True)
    description: str = ""
    tree: dict = _json()
    created_at: datetime = _created()
    updated_at: datetime = _created()


class ToolShare(SQLModel, table=True):
    """A saved tool shared with another user, who may export it (not change or remove it)."""

    tool_id: int = Field(foreign_key="savedtool.id", primary_key=True)
    user_id: int = Field(foreign_key="user.id", primary_key=True)


class Credential(SQLModel, table=True):
    """A user's key to their own storage (S3 or Dropbox). The secret part is only ever stored encrypted.

    `sealed` is the encrypted JSON of the secret fields; `config` holds the non-secret ones (region,
    endpoint URL); `hint` is what the owner sees to tell credentials apart (e.g. the key id's last four).
    """

    __table_args__ = (UniqueConstraint("owner_id", "label"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="user.id", index=True)
    kind: CredentialKind
    label: str
    hint: str
    config: dict = _json()
    sealed: str
    created_at: datetime = _created()


class Export(SQLModel, table=True):
    """One requested export: a tool tree rendered onto an output grid and delivered to targets."""

    __table_args__ = (Index("ix_export_status_created", "status", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="user.id", index=True)
    project_id: int | None = Field(default=None, foreign_key="project.id")
    tool: dict = _json()
    output_srid: int
    resolution: float
    grid: dict = _json()  # the planned output grid (see ray_render.grid.OutputGrid.to_dict)
    resampling: str = "nearest"
    compression: str = "deflate"
    status: ExportStatus = Field(default=ExportStatus.pending, index=True)
    priority: Priority = Priority.bulk  # the queue starts interactive exports ahead of bulk ones (flows.services.queue)
    tiles_done: int = 0
    tiles_total: int = 0
    progress: float = 0.0
    artifact: str | None = None  # where the deliverable is (rendered.uri, as a column to query by)
    rendered: dict | None = Field(default=None, sa_column=Column(JSON))  # a models.rendered.Rendered
    result: dict | None = Field(default=None, sa_column=Column(JSON))  # what the request's planning found
    error: str | None = None
    flow_run_id: str | None = None
    # Runs started for this export: the reconciler re-queues a crashed run while this is under the budget.
    attempts: int = 0
    # The command running it in its own process (embedded mode): host/boot id/pid/pid start time
    # (flows.services.settling); a run on a worker has none, the reconciler watches it through Prefect.
    runner: str | None = None
    # Beaten by the running flow every few seconds; a stale beat on an unfinished export means its run died.
    heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # What its render depends on (flows/services/reuse.py): an identical later export of its owner's reuses the
    # file. None: not reusable (a package, or an input that cannot tell whether it changed).
    render_fingerprint: str | None = Field(default=None, index=True)
    # Where its status changes are POSTed (signed with its owner's webhook secret); None: the owner's default.
    webhook_url: str | None = None
    created_at: datetime = _created()
    updated_at: datetime = _created()
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ExportTarget(SQLModel, table=True):
    """One delivery target of an export, with its own status and result."""

    id: int | None = Field(default=None, primary_key=True)
    export_id: int = Field(foreign_key="export.id", index=True)
    position: int = 0
    kind: TargetKind
    config: dict = _json()  # non-secret settings: bucket, prefix, path, link limits
    credential_id: int | None = Field(default=None, foreign_key="credential.id")
    status: TargetStatus = TargetStatus.pending
    result: dict | None = Field(default=None, sa_column=Column(JSON))
    error: str | None = None
    updated_at: datetime = _created()


class ExportLog(SQLModel, table=True):
    """One line of an export's own log: what happened to it, in words its owner reads (never a secret)."""

    __tablename__ = "export_log"

    id: int | None = Field(default=None, primary_key=True)
    export_id: int = Field(foreign_key="export.id", index=True)
    at: datetime = _created()
    level: str = "info"  # info | warning | error
    message: str
    # For a status change: the status it moved to, and when it went out as a Prefect event (flows/events.py).
    status: ExportStatus | None = None
    emitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Its webhook (flows/webhooks.py): not before `webhook_due_at` (a retry's backoff, or another sender's claim);
    # `notified_at` once delivered, given up, or found to have no webhook to go to.
    webhook_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    notified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Webhook(SQLModel, table=True):
    """A user's webhook settings: the signing secret (sealed, shown once when made) and a default URL for the
    exports that name none."""

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="user.id", unique=True)
    url: str | None = None
    secret_sealed: str
    secret_hint: str
    created_at: datetime = _created()
    updated_at: datetime = _created()


class WebhookAttempt(SQLModel, table=True):
    """One POST of a status change to a webhook, and how it went."""

    __tablename__ = "webhook_attempt"

    id: int | None = Field(default=None, primary_key=True)
    export_id: int = Field(foreign_key="export.id", index=True)
    log_id: int = Field(foreign_key="export_log.id", index=True)
    event: str  # geoship.export.<status>
    attempt: int  # 1 for the first POST of this event
    at: datetime = _created()
    host: str  # the URL's host (the URL itself may carry a token of the receiver's)
    status_code: int | None = None  # the receiver's answer; None when there was none
    ok: bool = False
    error: str | None = None
    duration_ms: int = 0
    final: bool = False  # no further attempt follows (delivered, given up, or refused outright)


class IdempotencyKey(SQLModel, table=True):
    """An `Idempotency-Key` a user sent with an export request, the request's hash, and the export it made."""

    user_id: int = Field(foreign_key="user.id", primary_key=True)
    key: str = Field(primary_key=True, max_length=255)
    request_hash: str
    export_id: int = Field(foreign_key="export.id")
    created_at: datetime = _created()


class DownloadLink(SQLModel, table=True):
    """An unguessable, expiring link to an export's file. Only the token's hash is stored."""

    id: int | None = Field(default=None, primary_key=True)
    export_id: int = Field(foreign_key="export.id", index=True)
    target_id: int | None = Field(default=None, foreign_key="exporttarget.id")
    # Lookups go by the token's SHA-256; the token itself is kept only encrypted, so its owner can be
    # shown the URL again while a copy of the database alone yields no usable link.
    token_hash: str = Field(unique=True, index=True)
    token_sealed: str
    expires_at: datetime = Field(sa_type=UTCDateTime)
    byte_rate_limit: int | None = None  # bytes per second
    # Number of downloads, counted in whole-file equivalents: bytes served / file size (a whole GET is one, a
    # GIS client's ranged reads a fraction of one).
    download_quota: int | None = None
    downloads_used: int = 0  # whole-file equivalents served so far, rounded down
    revoked: bool = False
    created_at: datetime = _created()


class Download(SQLModel, table=True):
    """Metering: one GET served from a download link, whole or a byte range, completed or aborted."""

    id: int | None = Field(default=None, primary_key=True)
    link_id: int = Field(foreign_key="downloadlink.id", index=True)
    user_id: int | None = Field(default=None, foreign_key="user.id")  # the caller, when authenticated
    client: str | None = None  # the client's address
    started_at: datetime = _created()
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    range_header: str | None = None
    range_start: int = 0
    range_end: int | None = None  # inclusive, as in Content-Range
    bytes_sent: int = 0
    completed: bool = False  # every byte of the range was handed over; finished but not completed = aborted
