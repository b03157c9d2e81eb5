"""`geoship users ...`: the people and services that use the HTTP API, and their API tokens."""

from __future__ import annotations

import typer
from rich.table import Table

from cli.common import console, print_json, reports_errors, session_scope
from models.errors import NotFound

users_app = typer.Typer(help="Users of the HTTP API and their tokens.", no_args_is_help=True)


@users_app.command("create")
@reports_errors
def users_create(name: str) -> None:
    """Create a user and print their API token: shown this once, stored only hashed."""
    from models.users import create_user

    with session_scope() as session:
        user, token = create_user(session, name=name)
    console.print(f"created user {user.name} (id {user.id}); API token (shown once):", highlight=False)
    typer.echo(token)


@users_app.command("token")
@reports_errors
def users_token(name: str) -> None:
    """Issue a new API token for a user, replacing the old one (which stops working at once)."""
    from sqlmodel import select

    from models.tables import User
    from models.users import issue_api_token

    with session_scope() as session:
        user = session.exec(select(User).where(User.name == name)).first()
        if user is None:
            raise NotFound(f"user {name!r} not found")
        token = issue_api_token(session, user)
    typer.echo(token)


@users_app.command("list")
@reports_errors
def users_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List users (never their tokens)."""
    from sqlmodel import select

    from models.tables import User

    with session_scope() as session:
        users = session.exec(select(User).order_by(User.id)).all()
        rows = [{"id": u.id, "name": u.name, "has_token": u.token_hash is not None, "created_at": u.created_at}
                for u in users]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "API token", "created")
    for row in rows:
        table.add_row(str(row["id"]), row["name"], "yes" if row["has_token"] else "-", f"{row['created_at']:%Y-%m-%d %H:%M}")
    console.print(table)
