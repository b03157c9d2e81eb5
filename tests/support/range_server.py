"""A loopback HTTP file server that answers byte ranges, as the static hosts of COGs do, with faults on demand.

GDAL's /vsicurl/ reads a COG with HEAD and ranged GETs; this server serves a directory that way, records every
request, and can answer chosen paths with a status (404, 503 a few times) or stall them.
"""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class RangeServer:
    """Serves `root` on 127.0.0.1; `fail[path] = (status, times)` answers `status` that many times (None: always),
    `stall` holds the paths whose requests never get an answer before the client gives up."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.fail: dict[str, tuple[int, int | None]] = {}
        self.stall: set[str] = set()
        # Send validators (ETag, Last-Modified) of each file, as most static hosts do; off: neither.
        self.validators = False
        self.requests: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args) -> None:
                pass

            def do_HEAD(self) -> None:  # noqa: N802 - the stdlib's naming
                self._serve(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                path = self.path.split("?")[0]
                with server._lock:
                    server.requests.append((self.command, path, self.headers.get("Range")))
                    status = server._planned_failure(path)
                if path in server.stall:
                    time.sleep(30)
                    return
                if status is not None:
                    self._answer(status, b"failure on purpose", body)
                    return
                target = server.root / path.lstrip("/")
                if not target.is_file():
                    self._answer(404, b"not found", body)
                    return
                data = target.read_bytes()
                if server.validators:
                    stat = target.stat()
                    validators = {"ETag": f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"',
                                  "Last-Modified": self.date_time_string(int(stat.st_mtime))}
                else:
                    validators = {}
                match = RANGE.match(self.headers.get("Range") or "")
                if match is None:
                    self._answer(200, data, body, {"Accept-Ranges": "bytes", **validators})
                    return
                start = int(match.group(1))
                end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
                if start >= len(data):
                    self._answer(416, b"", body, {"Content-Range": f"bytes */{len(data)}"})
                    return
                self._answer(206, data[start:end + 1], body, {"Accept-Ranges": "bytes", **validators,
                                                               "Content-Range": f"bytes {start}-{end}/{len(data)}"})

            def _answer(self, status: int, data: bytes, body: bool, headers: dict | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _planned_failure(self, path: str) -> int | None:
        if path not in self.fail:
            return None
        status, times = self.fail[path]
        if times is not None:
            if times <= 0:
                return None
            self.fail[path] = (status, times - 1)
        return status

    def start(self) -> RangeServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
