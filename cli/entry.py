"""The `geoship` executable: runs the command, then ends the process as soon as its exit handlers have run.

After an export, Python's own teardown (freeing every module, then Ray's, gRPC's and GDAL's finalisers and
threads) takes about 0.8 s on this machine and does nothing an ending process needs: the operating system
reclaims the memory, sockets and files anyway. So the last exit handler flushes what is buffered and leaves with
the command's exit status. Everything else still runs first: threads Python joins at exit (webhook sends),
then every exit handler registered after this one's (Prefect's event and log workers, Ray's disconnect).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys

# The status the process ends with: the command's, set when it finishes. An exception that escapes the command
# (Python prints it) ends it with 1.
_status = [1]


def run() -> None:
    """Entry point of the `geoship` console script."""
    from cli.main import app

    atexit.register(_leave)  # first of the command's own: runs after every handler registered later
    try:
        app()
        _status[0] = 0
    except SystemExit as exc:
        _status[0] = _exit_status(exc.code)
        raise
    except KeyboardInterrupt:
        _status[0] = 130
        raise


def _exit_status(code) -> int:
    """The process status `sys.exit(code)` gives: None is 0, an integer itself, anything else (a message) 1."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _leave() -> None:
    end_process(_status[0])


def end_process(status: int) -> None:
    """End this process with `status` now, from its last exit handler: logging's handlers and the standard streams
    flushed, Python's teardown skipped (the test suite's process ends the same way: tests/conftest.py)."""
    logging.shutdown()  # registered before the last handler, so it would otherwise be skipped
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    os._exit(status)
