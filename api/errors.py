"""geoship errors mapped to HTTP status codes, in one table installed once on the app."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from models.db import database_unavailable, unavailable_reason
from models.errors import (
    Conflict,
    Forbidden,
    GeoshipError,
    InvalidRequest,
    LinkExpired,
    NotFound,
    PermanentDeliveryError,
    RateLimited,
    RetryableError,
    Unauthorized,
)

STATUS_CODES: dict[type[GeoshipError], int] = {
    InvalidRequest: 422,
    Unauthorized: 401,
    Forbidden: 403,
    # A credential refused by its service, a missing bucket, a full Dropbox: the request cannot work as given.
    PermanentDeliveryError: 422,
    NotFound: 404,
    LinkExpired: 410,
    Conflict: 409,
    RateLimited: 429,
    RetryableError: 503,
}
logger = logging.getLogger(__name__)
# How long a client should wait before asking again while the database is unreachable (a restart, a failover).
DATABASE_RETRY_AFTER_SECONDS = 5


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
        if isinstance(exc, Unauthorized):
            headers = {"WWW-Authenticate": "Bearer"}
        return JSONResponse(status_code=status_code_for(exc), content=body, headers=headers)

    @app.exception_handler(RequestValidationError)
    @app.exception_handler(ValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError | ValidationError) -> JSONResponse:
        """Malformed input: 422 naming the first field and the reason, then every error (never the input values,
        which may be secrets)."""
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        field = ".".join(str(p) for p in first["loc"] if p not in ("body",)) or "body"
        reason = str(first["msg"]).removeprefix("Value error, ")
        details = [{"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in errors[:20]]
        return JSONResponse(status_code=422, content={"detail": f"{field}: {reason}", "field": field, "reason": reason,
                                                      "errors": details})

    @app.exception_handler(SQLAlchemyError)
    async def _database_unavailable(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        """The database went away mid-request (a restart, a failover, a lock held too long, no pooled connection
        free): the request's transaction did not commit, so the client may simply ask again. The driver's message
        goes to the log only. Any other database error is a fault of ours, and stays a 500."""
        if not database_unavailable(exc):
            raise exc
        logger.warning("database unavailable during %s %s: %s", request.method, request.url.path,
                       unavailable_reason(exc))
        return JSONResponse(status_code=503, headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
                            content={"detail": "the database is unavailable for a moment; retry shortly"})
