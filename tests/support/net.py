"""Network helpers for tests: loopback only."""

import socket

# Ports this process has handed out. The kernel may give a port that a test server has not bound yet (the
# fake Dropbox's is chosen at import, the server starts later) to the next bind to port 0 as well: a
# PostgreSQL cluster once took the fake Dropbox's port that way, and every Dropbox test failed to start.
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now and that no earlier call returned."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
