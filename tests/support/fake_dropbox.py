"""A loopback HTTPS server that speaks the Dropbox API v2 wire format for the endpoints geoship uses.

Routes: users/get_space_usage, files/upload, files/upload_session/start | append_v2 | finish,
files/get_metadata, files/delete_v2, and oauth2/token (refresh). Errors are Dropbox's own bodies: 401 `invalid_access_token`,
409 `insufficient_space` in the two shapes `files/upload` (UploadError: path -> UploadWriteFailed{reason})
and `upload_session/finish` (UploadSessionFinishError: path -> WriteError) use. Responses carry
`Content-Type: application/json` exactly, as the SDK insists.

The real `dropbox` SDK talks to it when DROPBOX_API_HOST and DROPBOX_API_CONTENT_HOST point here before
`dropbox` is imported, and geoship trusts its certificate through GEOSHIP_DROPBOX_CA_CERTS.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import ssl
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from tests.support.tls import self_signed_certificate

BLOCK = 4 * 1024 * 1024


def content_hash(data: bytes) -> str:
    blocks = b"".join(hashlib.sha256(data[i:i + BLOCK]).digest() for i in range(0, len(data), BLOCK))
    return hashlib.sha256(blocks).hexdigest()


@dataclass
class Account:
    """The state of the one Dropbox account behind the server."""

    allocated: int = 2 * 1024**3
    files: dict[str, bytes] = field(default_factory=dict)
    other_usage: int = 0  # space used by files that are not ours
    tokens: set[str] = field(default_factory=set)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> app key
    sessions: dict[str, bytearray] = field(default_factory=dict)
    # Simulates other clients filling the Dropbox while an upload session is open: added at the first append.
    fill_on_append: int = 0
    calls: list[str] = field(default_factory=list)
    headers_seen: list[dict[str, str]] = field(default_factory=list)

    @property
    def used(self) -> int:
        return self.other_usage + sum(len(v) for v in self.files.values())


def _file_metadata(path: str, data: bytes) -> dict:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        ".tag": "file", "name": path.rsplit("/", 1)[-1], "id": "id:" + hashlib.md5(path.encode()).hexdigest()[:22],
        "client_modified": now, "server_modified": now, "rev": secrets.token_hex(8) + "0",
        "size": len(data), "path_lower": path.lower(), "path_display": path, "content_hash": content_hash(data),
        "is_downloadable": True,
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "envoy"
    account: Account
    lock: threading.Lock

    def log_message(self, *_args) -> None:  # quiet
        pass

    def _reply(self, status: int, body) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, summary: str, error: dict) -> None:
        self._reply(status, {"error_summary": summary, "error": error})

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        route = self.path.split("?", 1)[0]
        account = self.account
        with self.lock:
            account.calls.append(route)
            account.headers_seen.append(dict(self.headers))
            if route == "/oauth2/token":
                return self._token(body)
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in account.tokens:
                return self._error(401, "invalid_access_token/", {".tag": "invalid_access_token"})
            arg = json.loads(self.headers.get("Dropbox-API-Arg") or "null") or (json.loads(body) if body else {})
            handler = {
                "/2/users/get_space_usage": self._space,
                "/2/files/upload": self._upload,
                "/2/files/upload_session/start": self._start,
                "/2/files/upload_session/append_v2": self._append,
                "/2/files/upload_session/finish": self._finish,
                "/2/files/delete_v2": self._delete,
                "/2/files/get_metadata": self._metadata,
            }.get(route)
            if handler is None:
                return self._reply(404, {"error_summary": "unknown route"})
            return handler(arg, body)

    def _token(self, body: bytes) -> None:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        app_key = self.account.refresh_tokens.get(form.get("refresh_token", ""))
        if form.get("grant_type") != "refresh_token" or app_key is None or form.get("client_id") != app_key:
            return self._reply(400, {"error": "invalid_grant", "error_description": "refresh token is invalid or revoked"})
        token = "sl." + secrets.token_urlsafe(24)
        self.account.tokens.add(token)
        self._reply(200, {"access_token": token, "token_type": "bearer", "expires_in": 14400})

    def _space(self, _arg, _body) -> None:
        account = self.account
        self._reply(200, {"used": account.used, "allocation": {".tag": "individual", "allocated": account.allocated}})

    def _fits(self, path: str, size: int) -> bool:
        existing = len(self.account.files.get(path.lower(), b""))
        return self.account.used - existing + size <= self.account.allocated

    def _upload(self, arg, body) -> None:
        path = arg["path"]
        if not self._fits(path, len(body)):
            return self._error(409, "path/insufficient_space/", {
                ".tag": "path", "reason": {".tag": "insufficient_space"},
                "upload_session_id": "pid_upload_session:" + secrets.token_urlsafe(12)})
        self.account.files[path.lower()] = body
        self._reply(200, _file_metadata(path, body))

    def _start(self, _arg, body) -> None:
        session_id = "pid_upload_session:" + secrets.token_urlsafe(12)
        self.account.sessions[session_id] = bytearray(body)
        self._reply(200, {"session_id": session_id})

    def _session(self, cursor) -> bytearray | None:
        data = self.account.sessions.get(cursor["session_id"])
        if data is None:
            self._error(409, "lookup_failed/not_found/", {".tag": "lookup_failed", "lookup_failed": {".tag": "not_found"}})
        elif cursor["offset"] != len(data):
            self._error(409, "incorrect_offset/", {".tag": "incorrect_offset", "correct_offset": len(data)})
            return None
        return data

    def _append(self, arg, body) -> None:
        data = self._session(arg["cursor"])
        if data is None:
            return
        if self.account.fill_on_append:
            self.account.other_usage += self.account.fill_on_append
            self.account.fill_on_append = 0
        data.extend(body)
        self._reply(200, None)

    def _finish(self, arg, body) -> None:
        data = self._session(arg["cursor"])
        if data is None:
            return
        data.extend(body)
        path = arg["commit"]["path"]
        if not self._fits(path, len(data)):
            del self.account.sessions[arg["cursor"]["session_id"]]
            return self._error(409, "path/insufficient_space/...", {".tag": "path", "path": {".tag": "insufficient_space"}})
        self.account.files[path.lower()] = bytes(data)
        del self.account.sessions[arg["cursor"]["session_id"]]
        self._reply(200, _file_metadata(path, bytes(data)))

    def _metadata(self, arg, _body) -> None:
        data = self.account.files.get(arg["path"].lower())
        if data is None:
            return self._error(409, "path/not_found/", {".tag": "path", "path": {".tag": "not_found"}})
        self._reply(200, _file_metadata(arg["path"], data))

    def _delete(self, arg, _body) -> None:
        data = self.account.files.pop(arg["path"].lower(), None)
        if data is None:
            return self._error(409, "path_lookup/not_found/", {".tag": "path_lookup", "path_lookup": {".tag": "not_found"}})
        self._reply(200, {"metadata": _file_metadata(arg["path"], data)})


class FakeDropbox:
    """The server: `start()` on a given port, then `account` is its state; `stop()` when done."""

    def __init__(self, port: int, directory: Path):
        self.port = port
        self.cert, self.key = self_signed_certificate(directory)
        self.account = Account()
        self._server: ThreadingHTTPServer | None = None

    def reset(self, **fields) -> Account:
        """A fresh account (optionally with fields such as `allocated`), keeping the server running."""
        self.account = Account(**fields)
        self._handler.account = self.account
        return self.account

    def issue_token(self) -> str:
        token = "sl." + secrets.token_urlsafe(32)
        self.account.tokens.add(token)
        return token

    def start(self) -> FakeDropbox:
        self._handler = type("Handler", (_Handler,), {"account": self.account, "lock": threading.Lock()})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
