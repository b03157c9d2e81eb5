"""The FastAPI application: thin over the engine, which knows nothing of HTTP."""

from __future__ import annotations

from fastapi import FastAPI

from api.downloads import install_download_limits
from api.downloads import router as downloads_router
from api.errors import install_error_handlers


def create_app() -> FastAPI:
    """A new app with every router and the error table installed."""
    app = FastAPI(title="geoship", summary="Order exports of imagery and download them.", version="0.1.0")
    install_error_handlers(app)
    app.include_router(downloads_router)
    install_download_limits(app)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
