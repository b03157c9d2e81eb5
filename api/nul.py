"""Refuse NUL characters in requests before they reach an endpoint.

PostgreSQL cannot store or even compare a string holding NUL (U+0000): psycopg2 raises on the query, and a
name like "\\u0000" answered 500 (found by the schema fuzz). No field of ours has a use for it, so a request
carrying one anywhere (path, query, JSON body) gets a 422 naming where.
"""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from starlette.responses import JSONResponse

REASON = "contains a NUL character (U+0000), which no field accepts"


def _nul_path(value, path: tuple = ()) -> str | None:
    """The dotted path of the first string (or key) in a JSON value holding NUL, or None."""
    if isinstance(value, str):
        return ".".join(map(str, path)) or "body" if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return ".".join(map(str, (*path, key)))
        if (found := _nul_path(item, (*path, key))) is not None:
            return found
    return None


class RefuseNulCharacters:
    """ASGI middleware: 422 for a request with NUL in its path, query or JSON body; the body is replayed."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        field = None
        if "\x00" in scope.get("path", ""):
            field = "path"
        elif b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
            field = "query"
        messages, body, more = [], b"", True
        while more:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            more = message.get("more_body", False) and message["type"] == "http.request"
        if field is None and b"\\u0000" in body:
            try:
                field = _nul_path(json.loads(body))
            except ValueError:  # not JSON: the endpoint's own parsing answers it
                field = None
        if field is not None:
            response = JSONResponse(status_code=422, content={"detail": f"{field}: {REASON}", "field": field,
                                                              "reason": REASON})
            return await response(scope, receive, send)

        async def replay():
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)
