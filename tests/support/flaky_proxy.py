"""A loopback HTTP proxy that fails chosen requests before passing the rest on: transient faults on demand.

Used in front of moto's S3 to show that a delivery rides out 503 SlowDown answers by retrying.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message></Error>")
ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                 b"<Message>Access Denied</Message></Error>")


class FlakyProxy:
    """Forwards to `upstream`; the first `failures` requests matching `should_fail(method, path)` get a 503
    SlowDown, or with `refuse`, a 403 AccessDenied. With `hold`, each of those is first held open, its client
    waiting, until `release` is set (`holding` is set once one is held): a request in flight, for a test to act
    in the middle of it."""

    def __init__(self, upstream: str, failures: int, should_fail: Callable[[str, str], bool], refuse: bool = False,
                 hold: bool = False):
        self.upstream = urlsplit(upstream)
        self.hold, self.holding, self.release = hold, threading.Event(), threading.Event()
        self.status, self.error = (403, ACCESS_DENIED) if refuse else (503, SLOW_DOWN)
        self.remaining, self.should_fail = failures, should_fail
        self.failed: list[str] = []
        self.forwarded: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy._lock:
                    fail = proxy.remaining > 0 and proxy.should_fail(self.command, self.path)
                    if fail:
                        proxy.remaining -= 1
                        proxy.failed.append(f"{self.command} {self.path}")
                if fail:
                    if proxy.hold:
                        proxy.holding.set()
                        proxy.release.wait(120)
                    try:
                        self.send_response(proxy.status)
                        self.send_header("Content-Type", "application/xml")
                        self.send_header("Content-Length", str(len(proxy.error)))
                        self.end_headers()
                        self.wfile.write(proxy.error)
                    except OSError:  # the client went away while held (a killed process)
                        self.close_connection = True
                    return
                proxy.forwarded.append(f"{self.command} {self.path}")
                connection = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                connection.request(self.command, self.path, body=body, headers=dict(self.headers))
                answer = connection.getresponse()
                payload = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                # HEAD answers carry the object's length with no body.
                self.send_header("Content-Length", answer.getheader("Content-Length", "0") if self.command == "HEAD"
                                 else str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                connection.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FlakyProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc) -> None:
        self._server.shutdown()
        self._server.server_close()
