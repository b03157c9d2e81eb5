"""Alembic migrations: they build exactly the schema the models declare, on SQLite and PostgreSQL, both ways."""

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from models.migrate import (
    VERSIONS,
    SchemaOutdated,
    current_revision,
    head_revision,
    require_current,
    shipped_head,
    upgrade,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_engine(geoship_home, suite_database_url):
    """An engine on the test's database with nothing in it (the fixture emptied PostgreSQL's schema)."""
    from models.db import make_engine

    engine = make_engine(suite_database_url or f"sqlite:///{geoship_home / 'migrations.db'}")
    geoship_home.mkdir(parents=True, exist_ok=True)
    yield engine
    engine.dispose()


def test_the_migrations_build_the_schema_the_models_declare(empty_engine):
    assert current_revision(empty_engine) is None
    assert upgrade(empty_engine) == head_revision()
    with empty_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                       SQLModel.metadata)
    assert differences == []


def test_downgrade_to_nothing_and_back(empty_engine):
    upgrade(empty_engine)
    upgrade(empty_engine, "head")  # a no-op when already current
    from alembic import command

    from models.migrate import _config

    with empty_engine.begin() as connection:
        command.downgrade(_config(connection), "base")
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}
    assert upgrade(empty_engine) == head_revision()


def test_a_production_database_must_be_upgraded_on_purpose(empty_engine):
    with pytest.raises(SchemaOutdated, match="run `geoship db upgrade`"):
        require_current(empty_engine)
    upgrade(empty_engine)
    require_current(empty_engine)


def test_a_database_that_cannot_be_reached_is_not_taken_for_an_empty_one():
    from sqlalchemy.exc import OperationalError

    from models.db import make_engine
    from tests.support.net import free_port

    engine = make_engine(f"postgresql+psycopg2://geoship:secret@127.0.0.1:{free_port()}/geoship")  # nothing there
    try:
        with pytest.raises(OperationalError, match="Connection refused"):
            current_revision(engine)
        with pytest.raises(OperationalError):  # not SchemaOutdated: upgrading would not help
            require_current(engine)
    finally:
        engine.dispose()


def test_renders_recorded_in_the_result_move_to_the_rendered_column_and_back(empty_engine):
    import json

    from sqlalchemy import text

    from models.rendered import Rendered

    upgrade(empty_engine, "0002")
    summary = {"path": "/a/export-1.tif", "bytes": 10, "sha256": "ab" * 32, "width": 4, "height": 3, "bands": ["red"],
               "dtype": "uint8", "tiles": 1, "seconds": 0.5, "name": "all", "col_off": 0, "row_off": 0,
               "uri": "s3://b/export-1/export-1.tif", "stac": "s3://b/export-1/export-1.stac.json"}
    with empty_engine.begin() as connection:
        connection.execute(text("INSERT INTO \"user\" (id, name, created_at) VALUES (1, 'ann', CURRENT_TIMESTAMP)"))
        connection.execute(
            text("INSERT INTO export (id, owner_id, tool, output_srid, resolution, grid, resampling, compression, status, "
                 "tiles_done, tiles_total, progress, attempts, created_at, updated_at, result) VALUES (1, 1, '{}', 3857, "
                 "1.0, '{}', 'nearest', 'deflate', 'success', 1, 1, 1.0, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, :r)"),
            {"r": json.dumps({"render": summary, "skipped_scenes": {"red": ["x"]}})})
    upgrade(empty_engine)
    with empty_engine.connect() as connection:
        rendered, result = connection.execute(text("SELECT rendered, result FROM export WHERE id = 1")).one()
    rendered = Rendered.model_validate(json.loads(rendered) if isinstance(rendered, str) else rendered)
    assert rendered.kind == "cog" and rendered.uri == summary["uri"] and rendered.stac_uri == summary["stac"]
    assert rendered.bytes == 10 and rendered.sha256 == summary["sha256"]
    assert (json.loads(result) if isinstance(result, str) else result) == {"skipped_scenes": {"red": ["x"]}}

    from alembic import command

    from models.migrate import _config

    with empty_engine.begin() as connection:
        command.downgrade(_config(connection), "0002")
    with empty_engine.connect() as connection:
        result = connection.execute(text("SELECT result FROM export WHERE id = 1")).scalar_one()
    back = (json.loads(result) if isinstance(result, str) else result)["render"]
    assert back["uri"] == summary["uri"] and back["stac"] == summary["stac"] and back["bytes"] == 10


def test_each_script_is_named_by_its_revision_so_the_head_needs_no_alembic():
    from alembic.script import ScriptDirectory

    from models.migrate import _config

    scripts = ScriptDirectory.from_config(_config())
    for script in scripts.walk_revisions():
        assert script.path.startswith(str(VERSIONS / f"{script.revision}_")), script.path
    assert shipped_head() == head_revision()


def test_a_current_database_is_recognised_without_importing_alembic(empty_engine):
    upgrade(empty_engine)
    code = ("import sys\n"
            "from models.db import make_engine\n"
            "from models.migrate import upgrade_if_behind\n"
            f"print(upgrade_if_behind(make_engine({str(empty_engine.url.render_as_string(hide_password=False))!r})))\n"
            "assert 'alembic' not in sys.modules, 'alembic was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == head_revision()
