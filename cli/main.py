"""The `geoship` command line."""

from __future__ import annotations

import typer
from rich.markup import escape

from cli.catalogue import projects_app, scenes_app
from cli.common import database_unavailable_reason, err_console, reports_errors
from cli.credentials import credentials_app, keys_app, links_app
from cli.database import db_app
from cli.demo import demo
from cli.exports import export_app, logs, run, status
from cli.tools import tools_app
from cli.users import users_app
from cli.webhooks import webhook_app
from cli.worker import worker

app = typer.Typer(name="geoship", help="Order exports of imagery and have them delivered.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


@app.callback()
def main() -> None:
    """Set offline, quiet defaults for Prefect and Ray before either is imported."""
    from flows.environment import configure_embedded_defaults

    configure_embedded_defaults()


app.add_typer(projects_app, name="projects")
app.add_typer(scenes_app, name="scenes")
app.add_typer(export_app, name="export")
app.add_typer(tools_app, name="tools")
app.add_typer(credentials_app, name="credentials")
app.add_typer(links_app, name="links")
app.add_typer(keys_app, name="keys")
app.add_typer(webhook_app, name="webhook")
app.add_typer(users_app, name="users")
app.add_typer(db_app, name="db")
app.command("run")(run)
app.command("status")(status)
app.command("logs")(logs)
app.command("demo")(demo)
app.command("worker")(worker)


def share_metrics_between_workers() -> None:
    """Let the workers of one `serve` count requests together (prometheus_client's multiprocess mode): in a fresh
    directory under GEOSHIP_HOME, unless PROMETHEUS_MULTIPROC_DIR names one already."""
    import os
    import shutil

    from models.settings import get_settings

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    directory = get_settings().home / "metrics"
    shutil.rmtree(directory, ignore_errors=True)  # counts of an earlier run would be added to this one's
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


@app.command("serve")
@reports_errors
def serve(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8000), workers: int = typer.Option(1)) -> None:
    """Serve the HTTP API and download links."""
    import uvicorn

    from flows.services.settling import settle_gone_runs

    try:
        settle_gone_runs()  # exports left running by commands of this machine that died
    except Exception as exc:
        # A database started beside the API may come up after it: serve anyway, answering 503 until it does
        # (each request tries again). A schema to upgrade still stops the start (reports_errors).
        reason = database_unavailable_reason(exc)
        if reason is None:
            raise
        err_console.print(f"[yellow]warning:[/yellow] the database is unavailable ({escape(reason)}); serving "
                          "anyway: requests answer 503 until it is back", highlight=False, soft_wrap=True)
    if workers > 1:
        share_metrics_between_workers()

    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers)
