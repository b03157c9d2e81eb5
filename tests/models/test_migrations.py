"""Alembic migrations: they build exactly the schema the models declare, on SQLite and PostgreSQL, both ways."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from models.migrate import SchemaOutdated, current_revision, head_revision, require_current, upgrade


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
