"""Schema migrations (Alembic, scripts in models/migrations/versions): upgrade, and check a database is current.

The embedded SQLite default is migrated automatically when its engine is built; production databases are
upgraded on purpose (`geoship db upgrade`) and refused with a clear message until they are.

Alembic (about 0.1 s to import, more to load the scripts) is only brought in when there is something to do:
a database already at the newest revision is recognised with one query, and the newest revision from the
scripts' file names, since each script's revision is its file's four-digit prefix (`0003_...py` is `0003`;
`tests/models/test_migrations.py` holds every script to that).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

from models.db import connection_lost
from models.errors import GeoshipError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSIONS = MIGRATIONS / "versions"


class SchemaOutdated(GeoshipError):
    """The database's schema is not the one this code expects."""


def _config(connection=None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration this code ships, as Alembic sees it."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def shipped_head() -> str:
    """The newest migration this code ships, from the scripts' names alone (no Alembic)."""
    return max(path.name[:4] for path in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for an empty (or unmanaged) database. A database that cannot
    be reached raises (SQLAlchemy's OperationalError): it is not an empty one to be told to upgrade."""
    with engine.connect() as connection:
        try:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except (OperationalError, ProgrammingError) as exc:  # no alembic_version table: an empty database
            if connection_lost(exc):
                raise
            return None


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Apply migrations up to `revision`; returns the revision the database is now at."""
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(_config(connection), revision)
    return current_revision(engine)


def upgrade_if_behind(engine: Engine) -> str:
    """`upgrade(engine)`, skipped (and Alembic never imported) when the database is already at the newest
    migration: the common case, on every command's first query."""
    current = current_revision(engine)
    return current if current == shipped_head() else upgrade(engine)


def require_current(engine: Engine) -> None:
    """`SchemaOutdated` unless the database is at the newest migration."""
    current, head = current_revision(engine), shipped_head()
    if current != head:
        raise SchemaOutdated(f"the database schema is at revision {current or 'none (empty database)'}, this code "
                             f"needs {head}: run `geoship db upgrade`")
