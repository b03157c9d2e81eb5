"""Process environment defaults for the embedded mode. Call before Prefect or Ray is imported."""

from __future__ import annotations

import os

from models.settings import get_settings


def configure_embedded_defaults() -> None:
    """Offline, quiet, and with Prefect's state under GEOSHIP_HOME; explicit settings always win."""
    home = get_settings().home
    defaults = {
        "DO_NOT_TRACK": "1",
        # The local server's telemetry otherwise fights the flow runs for its SQLite lock.
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_HOME": str(home / "prefect"),
        # The first start of a fresh local server runs its migrations, which can take 20-25 s here.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        # Flow-run logs still go to the Prefect API (and UI); the terminal shows the CLI's own output,
        # which reports a failure by the message recorded on the export row.
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
