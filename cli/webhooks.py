"""`geoship webhook ...`: your account's webhook (the default URL of your exports' status changes, and the secret
that signs them), and what became of an export's webhook POSTs."""

from __future__ import annotations

import typer
from rich.table import Table

from cli.common import acting_user, console, err_console, print_json, reports_errors, session_scope
from models.errors import NotFound

webhook_app = typer.Typer(help="Signed webhooks: a POST to your URL on every status change of your exports.",
                          no_args_is_help=True)


def show_new_secret(secret: str) -> None:
    """Print a signing secret just made, the one time it is shown."""
    err_console.print(f"webhook signing secret (shown this once; keep it to check X-Geoship-Signature): {secret}",
                      highlight=False, soft_wrap=True)


def _show(view, as_json: bool) -> None:
    if view.secret is not None:
        show_new_secret(view.secret)
    if as_json:
        print_json(view.model_dump(mode="json", exclude={"secret"}))
        return
    console.print(f"default URL: {view.url or '(none: only exports that name a URL notify)'}", highlight=False)
    console.print(f"signing secret: {view.secret_hint}", highlight=False)


@webhook_app.command("show")
@reports_errors
def webhook_show(as_json: bool = typer.Option(False, "--json")) -> None:
    """Show your default webhook URL and your signing secret's hint."""
    from delivery.webhook_settings import account_webhook, webhook_view

    with session_scope() as session:
        webhook = account_webhook(session, acting_user(session).id)
        if webhook is None:
            raise NotFound("you have no webhook settings yet: `geoship webhook set URL` sets them up")
        _show(webhook_view(webhook), as_json)


@webhook_app.command("set")
@reports_errors
def webhook_set(url: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Set the URL that your exports naming none of their own notify (the first time, make your secret)."""
    from delivery.webhook_settings import set_account_webhook

    with session_scope() as session:
        _show(set_account_webhook(session, acting_user(session), url), as_json)


@webhook_app.command("clear")
@reports_errors
def webhook_clear(as_json: bool = typer.Option(False, "--json")) -> None:
    """Remove your default URL (exports that name their own still notify it)."""
    from delivery.webhook_settings import set_account_webhook

    with session_scope() as session:
        _show(set_account_webhook(session, acting_user(session), None), as_json)


@webhook_app.command("rotate-secret")
@reports_errors
def webhook_rotate_secret(as_json: bool = typer.Option(False, "--json")) -> None:
    """Make a new signing secret, used from the next POST on; shown once."""
    from delivery.webhook_settings import rotate_webhook_secret

    with session_scope() as session:
        _show(rotate_webhook_secret(session, acting_user(session)), as_json)


@webhook_app.command("attempts")
@reports_errors
def webhook_attempts(export_id: int, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every POST of an export's status changes to its webhook, and how each went."""
    from flows.services.views import webhook_attempts_view

    with session_scope() as session:
        attempts = webhook_attempts_view(session, owner=acting_user(session), export_id=export_id)
    if as_json:
        print_json([a.model_dump(mode="json") for a in attempts])
        return
    table = Table("at", "event", "try", "host", "answer", "ms")
    for a in attempts:
        answer = "ok" if a.ok else (a.error or str(a.status_code))
        table.add_row(f"{a.at:%Y-%m-%d %H:%M:%S}", a.event, str(a.attempt), a.host,
                      answer + ("" if a.final or a.ok else " (retrying)"), str(a.duration_ms))
    console.print(table)
