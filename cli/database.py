"""`geoship db ...`: the database schema, managed by Alembic migrations."""

from __future__ import annotations

import typer

from cli.common import console, reports_errors

db_app = typer.Typer(help="The database schema (Alembic migrations).", no_args_is_help=True)


def _engine():
    from models.db import make_engine
    from models.settings import get_settings

    settings = get_settings()
    if settings.database_url is None:
        settings.home.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.resolved_database_url())


@db_app.command("upgrade")
@reports_errors
def db_upgrade(revision: str = typer.Argument("head", help="Target revision (default: the newest).")) -> None:
    """Apply the migrations the database has not had yet."""
    from models.migrate import current_revision, upgrade

    engine = _engine()
    before = current_revision(engine)
    after = upgrade(engine, revision)
    message = f"database schema: {before or 'empty'} -> {after}" if before != after else f"database schema already at {after}"
    console.print(message)


@db_app.command("current")
@reports_errors
def db_current() -> None:
    """Show the database's revision and the newest one this code ships."""
    from models.migrate import current_revision, head_revision

    console.print(f"database: {current_revision(_engine()) or 'empty'}; code: {head_revision()}")
