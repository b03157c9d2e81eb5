"""The FastAPI application: thin over the engine, which knows nothing of HTTP.

Endpoints live under /api/v1 (OpenAPI at /api/v1/openapi.json, docs at /api/v1/docs); download links stay at
/downloads/{token}, the URL users are given.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from api.catalogue import router as catalogue_router
from api.credentials import router as credentials_router
from api.downloads import install_download_limits
from api.downloads import router as downloads_router
from api.errors import install_error_handlers
from api.exports import router as exports_router
from api.metrics import install_metrics
from api.nul import RefuseNulCharacters
from api.tools import router as tools_router
from api.webhooks import router as webhooks_router

API_PREFIX = "/api/v1"
WARM_UP_THREAD = "geoship-warm-up"

logger = logging.getLogger(__name__)


def _lifespan(made_in: contextvars.Context):
    """Warm up on a thread as the app starts: it answers at once, and a request arriving meanwhile waits only for
    what it needs. The thread runs in the context the app was made in, which holds the settings in force there
    (Prefect's among them); the server may start the app on another thread."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=made_in.copy().run, args=(warm_up,), name=WARM_UP_THREAD, daemon=True).start()
        yield

    return lifespan


def warm_up() -> None:
    """Where requests start flow runs on a Prefect server, import and connect what the first one would otherwise
    wait for (never Prefect's temporary server: that starts with the first run that needs it). A Prefect that
    cannot be reached now is only logged: each request reports its own failure to start."""
    from flows.capacity import prefect_api_configured
    from flows.starting import prepare_to_start, starts_on_request  # orchestration: only where a run starts

    if not (prefect_api_configured() and starts_on_request()):
        return
    try:
        prepare_to_start()
    except Exception as exc:
        logger.warning("could not reach Prefect at start-up (%s); requests will try again", exc)
    else:
        logger.info("ready to start exports' flow runs on Prefect")


def create_app() -> FastAPI:
    """A new app with every router and the error table installed."""
    app = FastAPI(
        title="geoship", summary="Order exports of imagery and have them delivered.", version="0.1.0",
        openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs", redoc_url=None,
        lifespan=_lifespan(contextvars.copy_context()),
    )
    install_error_handlers(app)
    api = APIRouter(prefix=API_PREFIX)
    for router in (exports_router, credentials_router, catalogue_router, tools_router, webhooks_router):
        api.include_router(router)
    app.include_router(api)
    app.include_router(downloads_router)
    install_download_limits(app)
    install_metrics(app)
    app.add_middleware(RefuseNulCharacters)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
