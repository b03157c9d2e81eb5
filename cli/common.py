"""What every command shares: the console, error reporting with exit codes, the acting user."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from models.errors import GeoshipError, PermanentError

console = Console()
err_console = Console(stderr=True)

EXIT_FAILED = 1  # the work was attempted and failed
EXIT_REFUSED = 2  # the request was refused (bad input, not found, conflict)
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C, as shells report SIGINT


def reports_errors(command):
    """Turn geoship errors into one clear line on stderr and a non-zero exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except GeoshipError as exc:
            # The message is text, not markup: tool-tree messages quote JSON such as [[value, "#rrggbb"], ...].
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(EXIT_REFUSED if isinstance(exc, PermanentError) else EXIT_FAILED) from None
        except KeyboardInterrupt:
            err_console.print("[red]interrupted[/red]")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            reason = database_unavailable_reason(exc)
            if reason is None:
                raise
            err_console.print(f"[red]error:[/red] the database is unavailable: {escape(reason)}", highlight=False,
                              markup=True, soft_wrap=True)
            raise typer.Exit(EXIT_FAILED) from None

    return wrapper


def database_unavailable_reason(exc: Exception) -> str | None:
    """The driver's reason when `exc` says the database cannot be reached or went away, else None. (SQLAlchemy
    is only imported here when it raised: commands that read nothing do not pay for it.)"""
    if not type(exc).__module__.startswith("sqlalchemy"):
        return None
    from models.db import database_unavailable, unavailable_reason

    return unavailable_reason(exc) if database_unavailable(exc) else None


@contextmanager
def session_scope() -> Iterator:
    """`models.db.session_scope`, imported when a command first reads a row: SQLAlchemy and the tables take
    about a third of a second to import, which `--help` and commands that read nothing should not pay.
    Command modules import services inside their commands for the same reason."""
    from models.db import session_scope as database_session

    with database_session() as session:
        yield session


def print_json(data: Any) -> None:
    """One JSON document on stdout, nothing else."""
    typer.echo(json.dumps(data, indent=2, default=str))


def acting_user(session):
    """The user this CLI acts as (GEOSHIP_USER, default 'local'), created on first use."""
    from models.catalogue import get_or_create_user
    from models.settings import get_settings

    return get_or_create_user(session, name=get_settings().user)
