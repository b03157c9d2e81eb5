"""geoship errors mapped to HTTP status codes, in one table installed once on the app."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from models.errors import Conflict, GeoshipError, InvalidRequest, LinkExpired, NotFound, RateLimited, RetryableError

STATUS_CODES: dict[type[GeoshipError], int] = {
    InvalidRequest: 422,
    NotFound: 404,
    LinkExpired: 410,
    Conflict: 409,
    RateLimited: 429,
    RetryableError: 503,
}


def status_code_for(exc: GeoshipError) -> int:
    """The HTTP status of an error: the first table entry it is an instance of, else 500."""
    return next((code for kind, code in STATUS_CODES.items() if isinstance(exc, kind)), 500)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every `GeoshipError` with its status code and a JSON body naming the problem."""

    @app.exception_handler(GeoshipError)
    async def _handle(_request: Request, exc: GeoshipError) -> JSONResponse:
        body = {"detail": str(exc)}
        if isinstance(exc, InvalidRequest):
            body.update(field=exc.field, reason=exc.reason)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return JSONResponse(status_code=status_code_for(exc), content=body, headers=headers)
