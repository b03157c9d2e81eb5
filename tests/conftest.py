"""Shared fixtures: an offline environment, a fresh database per test, one Ray and one Prefect per session,
and a factory of small real GeoTIFFs.

The database: by default each test gets its own SQLite file. With GEOSHIP_TEST_DATABASE=postgresql the
session starts a throwaway PostgreSQL cluster (tests/support/postgres.py) and each test starts from an
empty schema there; GEOSHIP_TEST_DATABASE_URL points the suite at an existing server instead.
"""

from __future__ import annotations

import atexit
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

# The offline environment, before anything imports Prefect or Ray.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="geoship-tests-"))
os.environ["GEOSHIP_HOME"] = str(_SESSION_HOME)
for _key, _value in {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_HOME": str(_SESSION_HOME / "prefect"),
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "AWS_EC2_METADATA_DISABLED": "true",
    # Requests stay pending unless a test asks for immediate start (tests/api/test_immediate_start.py).
    "GEOSHIP_START_ON_REQUEST": "false",
    # Whatever joins Ray in the test process (the session's ray_cluster, or the queue sizing render slots)
    # starts the same two-CPU instance.
    "GEOSHIP_RAY_NUM_CPUS": "2",
    # Users' S3 endpoints may only be on loopback: no test can steer the server anywhere else.
    "GEOSHIP_S3_ENDPOINT_HOSTS": '["127.0.0.1"]',
}.items():
    os.environ[_key] = _value
os.environ.pop("RAY_ADDRESS", None)
os.environ.pop("PREFECT_API_URL", None)
# moto checks signatures and IAM permissions (tests/support/s3.py); must be set before moto is imported.
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
# The Dropbox SDK reads its hosts once, at import: point them at the loopback fake (tests/support/fake_dropbox.py).
from tests.support.net import free_port  # noqa: E402

DROPBOX_PORT = free_port()
os.environ["DROPBOX_API_HOST"] = os.environ["DROPBOX_API_CONTENT_HOST"] = f"127.0.0.1:{DROPBOX_PORT}"

from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import rasterio  # noqa: E402
from affine import Affine  # noqa: E402

from cli.samples import DEMO_SCENES  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGERY = Path(os.environ.get("GEOSHIP_IMAGERY_DIR", REPO_ROOT.parent / "shared" / "data" / "imagery"))


# The suite's result, once pytest has it (pytest_sessionfinish); None until then.
_suite_status: list[int | None] = [None]


def pytest_sessionfinish(session, exitstatus):
    _suite_status[0] = int(exitstatus)


def _leave_with_the_suite_status() -> None:
    """End the test process as `geoship` ends its own (cli/entry.py): after every exit handler registered later
    (Prefect's event and log workers, Ray's disconnect) has run, flush and leave with the suite's status, without
    Python's teardown of GDAL's, gRPC's and Ray's modules and threads. That teardown serves no purpose in an
    ending process, and once, after 699 passing tests, it crashed (SIGSEGV) and turned a green run red. Only once
    pytest has a result: a run that ends before it exits as Python would."""
    if _suite_status[0] is None:
        return
    from cli.entry import end_process

    end_process(_suite_status[0])


atexit.register(_leave_with_the_suite_status)  # registered before Prefect and Ray are imported: runs after theirs


def _reset_caches() -> None:
    from models.db import get_engine
    from models.settings import get_settings

    get_settings.cache_clear()
    get_engine.cache_clear()


def pytest_collection_modifyitems(config, items):
    """With GEOSHIP_TEST_ONLY_DATABASE set (`make test`'s PostgreSQL pass, after the SQLite one), run only the
    tests that reach the suite's database, through `suite_database_url`: the others (rendering, the production
    end-to-end run with its own PostgreSQL, lint) would run exactly as on the SQLite pass, for twice the time."""
    if not os.environ.get("GEOSHIP_TEST_ONLY_DATABASE"):
        return
    reach = [item for item in items if "suite_database_url" in getattr(item, "fixturenames", ())]
    others = [item for item in items if item not in reach]
    if others:
        config.hook.pytest_deselected(items=others)
        items[:] = reach


@pytest.fixture(scope="session")
def suite_database_url() -> Iterator[str | None]:
    """The database URL the suite runs against, or None for per-test SQLite files."""
    url = os.environ.get("GEOSHIP_TEST_DATABASE_URL")
    if url or os.environ.get("GEOSHIP_TEST_DATABASE", "sqlite") == "sqlite":
        yield url
        return
    from tests.support.postgres import ThrowawayPostgres

    server = ThrowawayPostgres()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def geoship_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suite_database_url) -> Iterator[Path]:
    """A fresh GEOSHIP_HOME and database for one test (SQLite file, or an emptied test database)."""
    home = tmp_path / "home"
    monkeypatch.setenv("GEOSHIP_HOME", str(home))
    url = suite_database_url
    if url:
        monkeypatch.setenv("GEOSHIP_DATABASE_URL", url)
        monkeypatch.setenv("GEOSHIP_AUTO_MIGRATE", "true")  # each test starts from an empty, freshly migrated schema
        from sqlalchemy import text

        from models.db import make_engine

        engine = make_engine(url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    else:
        monkeypatch.delenv("GEOSHIP_DATABASE_URL", raising=False)
    _reset_caches()
    yield home
    if "flows.webhooks" in sys.modules:  # a run's webhooks still being sent belong to this test's database
        sys.modules["flows.webhooks"].wait_for_background_sends(timeout=60)
    from models.db import get_engine

    get_engine().dispose()
    _reset_caches()


@pytest.fixture
def session(geoship_home):
    """A database session on the test's database."""
    from sqlmodel import Session

    from models.db import get_engine

    with Session(get_engine(), expire_on_commit=False) as s:
        yield s


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance with two CPUs for the whole session."""
    import ray

    from ray_render.cluster import ensure_ray

    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def prefect_server():
    """Prefect's test harness (a temporary local server) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on loopback with IAM-checked users (writer, reader, service), for the session."""
    from tests.support.s3 import MotoS3

    server = MotoS3().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """SeaweedFS on 127.0.0.1:8333 for the session; yields an admin boto3 client."""
    from tests.support.seaweedfs import run_seaweedfs

    yield from run_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))


@pytest.fixture(scope="session")
def dropbox_server(tmp_path_factory):
    """The fake Dropbox API (HTTPS on loopback) for the session; geoship trusts its certificate."""
    from tests.support.fake_dropbox import FakeDropbox

    server = FakeDropbox(DROPBOX_PORT, tmp_path_factory.mktemp("dropbox-tls")).start()
    os.environ["GEOSHIP_DROPBOX_CA_CERTS"] = str(server.cert)
    yield server
    server.stop()


@pytest.fixture
def dropbox(dropbox_server, geoship_home):
    """A fresh Dropbox account (2 GiB) on the fake server, for one test."""
    from models.settings import get_settings

    dropbox_server.reset()
    get_settings.cache_clear()  # pick up GEOSHIP_DROPBOX_CA_CERTS whatever the fixture order
    return dropbox_server


@pytest.fixture
def webhook_receiver(geoship_home, monkeypatch):
    """A webhook receiver on 127.0.0.1, a host this server is told it may reach (no other private address); a
    1 s timeout and no backoff, so that a test's retries are due at once."""
    from models.settings import get_settings
    from tests.support.webhook_receiver import Receiver

    monkeypatch.setenv("GEOSHIP_WEBHOOK_PRIVATE_HOSTS", '["127.0.0.1"]')
    monkeypatch.setenv("GEOSHIP_WEBHOOK_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("GEOSHIP_WEBHOOK_BACKOFF_SECONDS", "0")
    get_settings.cache_clear()
    receiver = Receiver()
    yield receiver
    receiver.close()
    get_settings.cache_clear()


RasterFactory = Callable[..., Path]


@pytest.fixture
def make_raster(tmp_path: Path) -> RasterFactory:
    """Write a small GeoTIFF: `make_raster(name, data, crs=..., origin=(x, y), res=..., nodata=..., bands=[...])`.

    `data` is (bands, rows, cols); `origin` is the top-left corner; `bands` become band descriptions.
    """

    def factory(name: str, data: np.ndarray, *, crs: str = "EPSG:32618", origin=(500000.0, 4000000.0),
                res: float = 10.0, nodata=None, bands: list[str] | None = None, directory: Path | None = None) -> Path:
        data = np.asarray(data)
        if data.ndim == 2:
            data = data[None]
        path = (directory or tmp_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype.name, crs=crs, transform=Affine(res, 0, origin[0], 0, -res, origin[1]),
                       nodata=nodata)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            for index, band in enumerate(bands or [], start=1):
                dst.set_band_description(index, band)
        return path

    return factory


# Small versions of the demo scenes: same places and zones, 200 px at 120 m.
SMALL_SCENES = [replace(s, size_px=200, resolution=120.0) for s in DEMO_SCENES]
# Lon/lat polygon inside the overlap of the two small scenes' swaths.
SMALL_AOI = {"type": "Polygon", "coordinates": [[[11.93, 45.97], [12.08, 45.97], [12.08, 46.08], [11.93, 46.08], [11.93, 45.97]]]}


@pytest.fixture(scope="session")
def sample_scene_paths(tmp_path_factory):
    """The two small sample scenes, written once per session."""
    from cli.samples import write_scene

    directory = tmp_path_factory.mktemp("samples")
    return [write_scene(scene, directory) for scene in SMALL_SCENES]


def require_imagery(*relative: str) -> list[Path]:
    """Paths under the shared imagery directory; skips the test (saying why) when it is not there."""
    paths = [IMAGERY / r for r in relative]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"shared imagery not found: {', '.join(missing)} (set GEOSHIP_IMAGERY_DIR)")
    return paths
