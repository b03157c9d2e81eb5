"""Settings read from the environment (prefix ``GEOSHIP_``), built lazily and cached."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything geoship can be told; all state lives under ``home`` unless a URL points elsewhere."""

    model_config = SettingsConfigDict(env_prefix="GEOSHIP_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".geoship")
    database_url: str | None = None
    # Apply database migrations when the engine is first built. None: only for the embedded SQLite default;
    # production databases are upgraded on purpose, with `geoship db upgrade`.
    auto_migrate: bool | None = None
    artifacts_dir: Path | None = None
    # Production artifact store, e.g. s3://bucket/prefix, so workers on other machines can read renders.
    # Its credentials come from the standard AWS environment (variables, profile or instance role).
    artifacts_url: str | None = None
    artifacts_endpoint_url: str | None = None
    # Base URL that download links are built on; `geoship serve` listens here by default.
    public_url: str = "http://127.0.0.1:8000"
    link_ttl_hours: float = 72.0
    # Encrypts stored secrets (credentials, download-link tokens). Comma-separated keys are a key ring:
    # the first encrypts, all decrypt (see `geoship keys rotate`). When unset, a 0600 key file under
    # `home` is created on first use.
    secret_key: SecretStr | None = None
    # The user the CLI acts as on this machine.
    user: str = "local"

    tile_size: int = Field(default=1024, ge=64, le=4096)
    # Tile actors in the pool; 0 means one per CPU the Ray cluster has.
    pool_size: int = Field(default=0, ge=0)
    # Tiles in flight per actor: enough to hide the driver's write latency, few enough to bound memory.
    tiles_in_flight_per_actor: int = Field(default=2, ge=1)
    # GDAL's block cache per tile actor (and the driver), in MB. It fills to its cap; 128 rendered the 20,000 px
    # job as fast as 256 side by side and keeps a 40,000 px render under 2 GiB (bench/RESULTS.md).
    gdal_cache_mb: int = Field(default=128, ge=16)
    # Quality (1-100) of JPEG and WEBP exports.
    lossy_quality: int = Field(default=90, ge=1, le=100)
    # Compression levels of DEFLATE and ZSTD exports (GDAL's defaults): higher is smaller and slower to write.
    deflate_level: int = Field(default=6, ge=1, le=12)
    zstd_level: int = Field(default=9, ge=1, le=22)
    # Largest reprojection error, in output pixels, of GDAL's approximate transformer (gdalwarp -et);
    # 0 selects the exact transformer, about ten times slower to warp. Outputs never depend on the tile size.
    warp_error_threshold: float = Field(default=0.125, ge=0, le=1)
    ray_address: str | None = None
    ray_num_cpus: int | None = None
    # Start an export's flow run as soon as it is requested (the poller stays as the safety net). None: do so
    # whenever a Prefect API is configured (PREFECT_API_URL).
    start_on_request: bool | None = None
    # A running export beats every `heartbeat_seconds`; the reconciler deems a run dead after
    # `heartbeat_timeout_seconds` of silence, and re-queues it while it has had fewer than `max_attempts` runs.
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    heartbeat_timeout_seconds: float = Field(default=120.0, gt=0)
    max_attempts: int = Field(default=2, ge=1)
    # A claim whose flow run was never created is given back after this long.
    claim_timeout_seconds: float = Field(default=300.0, gt=0)
    # Capacity and fairness. Renders running at once across the cluster: a Prefect global concurrency limit
    # (`geoship-renders`) that each render holds a slot of; None sizes it from the Ray cluster, one render per
    # `render_cpus` CPUs. Each render's actor pool gets its share of the cluster (CPUs / that limit).
    max_concurrent_renders: int | None = Field(default=None, ge=1)
    render_cpus: int = Field(default=4, ge=1)
    # Exports of one user running at once (submitted, rendering or delivering); the rest wait, pending.
    max_running_per_user: int = Field(default=2, ge=1)
    # Exports of at most this many uncompressed bytes are interactive unless the request says otherwise: they
    # start ahead of bulk ones.
    interactive_max_bytes: int = Field(default=256 * 1024**2, ge=0)
    export_deployment: str = "export/export"
    retry_delivery_deployment: str = "retry-delivery/retry-delivery"
    # `geoship worker` (flows/resident.py): how often it asks Prefect for scheduled runs, and how many runs it
    # has in progress at once. A poll is one small query (two while runs are in progress); a run waits half of this
    # on average to be claimed. While runs of its own are in progress it asks every `worker_busy_poll_seconds`:
    # those calls cost Prefect's server and the worker CPU the render would use.
    worker_poll_seconds: float = Field(default=0.25, gt=0, le=60)
    worker_busy_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    worker_runs: int = Field(default=4, ge=1, le=64)
    # Its tile actors wait this long, idle, for its next render rather than ending with each (0: they end). An
    # idle actor holds its CPU in Ray's accounting: they also end as soon as another process renders.
    worker_keep_actors_seconds: float = Field(default=120.0, ge=0)
    # Largest output an export may have, in uncompressed bytes.
    max_export_bytes: int = 64 * 1024**3
    # Outputs larger than this (uncompressed bytes) are split into shards of at most this size on one grid,
    # delivered as one ZIP with a VRT and a STAC collection.
    shard_max_bytes: int = Field(default=8 * 1024**3, gt=0)

    # S3 uploads: one PUT up to the threshold, multipart above it (parts of at least 5 MiB, at most 10,000).
    s3_multipart_threshold: int = Field(default=64 * 1024**2, ge=5 * 1024**2)
    s3_part_size: int = Field(default=16 * 1024**2, ge=5 * 1024**2, le=5 * 1024**3)
    # Hosts that users' S3 credentials may name as their endpoint (None: any). A server that must not be
    # steered into its own network (SSRF) lists the S3-compatible stores it serves, or none at all.
    s3_endpoint_hosts: list[str] | None = None
    # Attempts per request to S3 and Dropbox (exponential backoff with jitter between them).
    delivery_attempts: int = Field(default=5, ge=1, le=20)
    # Dropbox accepts one request of up to 150 MiB; larger files go through an upload session in chunks.
    dropbox_upload_threshold: int = Field(default=150 * 1024**2, ge=1, le=150 * 1024**2)
    dropbox_chunk_size: int = Field(default=8 * 1024**2, ge=1, le=150 * 1024**2)
    # CA bundle for Dropbox's API hosts (a TLS-inspecting proxy, or a test server); default: certifi's.
    dropbox_ca_certs: Path | None = None

    # Download links: whole-file requests per minute per link owner (429 with Retry-After beyond), and a burst
    # allowance.
    download_requests_per_minute: float = Field(default=60.0, gt=0)
    download_request_burst: int = Field(default=10, ge=1)
    # Partial (Range) reads per minute per link and client: a GIS client reading a COG in place makes hundreds
    # of small ones; the link's byte rate still holds.
    download_range_requests_per_minute: float = Field(default=3000.0, gt=0)
    download_range_request_burst: int = Field(default=1000, ge=1)
    # Origins browsers may read download links from (CORS), comma-separated, or "*"; empty: no CORS headers.
    download_cors_origins: str = ""

    # Webhooks: each status change is POSTed with this timeout, retried `webhook_attempts` times in all with
    # backoff (`webhook_backoff_seconds`, tripled each time: 10 s, 30 s, 90 s... by default).
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    webhook_attempts: int = Field(default=6, ge=1, le=20)
    webhook_backoff_seconds: float = Field(default=10.0, ge=0)
    # Webhooks go to public addresses only: a URL whose host is, or resolves to, a loopback, private, link-local
    # or otherwise reserved address is refused (SSRF), unless its host is listed here ("*": any host).
    webhook_private_hosts: list[str] = Field(default_factory=list)

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to an SQLite file under ``home``."""
        return self.database_url or f"sqlite:///{self.home / 'geoship.db'}"

    def resolved_artifacts_dir(self) -> Path:
        """The local artifact directory, defaulting to ``home/artifacts``."""
        return self.artifacts_dir or self.home / "artifacts"


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read from the environment on first call."""
    return Settings()
