"""Schema migrations (Alembic, scripts in models/migrations/versions): upgrade, and check a database is current.

The embedded SQLite default is migrated automatically when its engine is built; production databases are
upgraded on purpose (`geoship db upgrade`) and refused with a clear message until they are.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from models.errors import GeoshipError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaOutdated(GeoshipError):
    """The database's schema is not the one this code expects."""


def _config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration this code ships."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for an empty (or unmanaged) database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Apply migrations up to `revision`; returns the revision the database is now at."""
    with engine.begin() as connection:
        command.upgrade(_config(connection), revision)
    return current_revision(engine)


def require_current(engine: Engine) -> None:
    """`SchemaOutdated` unless the database is at the newest migration."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutdated(f"the database schema is at revision {current or 'none (empty database)'}, this code "
                             f"needs {head}: run `geoship db upgrade`")
