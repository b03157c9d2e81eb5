"""The FastAPI application: thin over the engine, which knows nothing of HTTP.

Endpoints live under /api/v1 (OpenAPI at /api/v1/openapi.json, docs at /api/v1/docs); download links stay at
/downloads/{token}, the URL users are given.
"""

from __future__ import annotations

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


def create_app() -> FastAPI:
    """A new app with every router and the error table installed."""
    app = FastAPI(
        title="geoship", summary="Order exports of imagery and have them delivered.", version="0.1.0",
        openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs", redoc_url=None,
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
