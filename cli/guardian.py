"""A command's helpers die with it, however it dies.

A command that renders here starts helpers: Prefect's temporary server (a uvicorn process of its own) and a
local Ray. On Ctrl-C they go with the process group, and on a normal exit Prefect stops its server; but a
command killed by SIGKILL (as the OOM killer does) runs no cleanup, and the temporary server lived on as an
orphan. So the command starts a guardian: a small process that keeps a list of the command's descendants and,
once the command is gone (the guardian is re-parented), terminates them, then kills what is left.
Linux only (it reads /proc); elsewhere nothing is started.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Runs in the guardian: `python -c GUARD <command pid>`.
GUARD = r"""
import os, signal, sys, time
from pathlib import Path

command = int(sys.argv[1])

def descendants(root):
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found and child != os.getpid():
                found.add(child)
                todo.append(child)
    return found

helpers = set()
while os.getppid() == command:
    helpers |= descendants(command)
    time.sleep(1.0)
for sig in (signal.SIGTERM, signal.SIGKILL):
    for pid in helpers:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in helpers):
        time.sleep(0.1)
"""


def guard_helpers() -> subprocess.Popen | None:
    """Start the guardian of this process's helpers (once per process); returns it, or None off Linux."""
    global _guardian
    if _guardian is not None or not Path("/proc/self/stat").exists():
        return _guardian
    # Its own session: a Ctrl-C to the command's process group leaves it to clean up after the group.
    _guardian = subprocess.Popen([sys.executable, "-c", GUARD, str(os.getpid())], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return _guardian


_guardian: subprocess.Popen | None = None
