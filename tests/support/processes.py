"""Long-running helper processes for end-to-end tests: started in their own process group, stopped with it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx


class Service:
    """A command running in the background with its output in `log`; `stop()` ends its whole process group."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path, cwd: Path | None = None):
        self.name = name
        self.log = log_dir / f"{name}.log"
        self._handle = open(self.log, "wb")
        self.process = subprocess.Popen(command, env=env, cwd=cwd, stdout=self._handle, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait_for_http(self, url: str, seconds: float) -> None:
        """Until `url` answers below 500; fails with the service's log when it exits or time runs out."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} did not answer {url} within {seconds} s:\n{self.tail()}")

    def wait_for_line(self, text: str, seconds: float) -> None:
        """Until the service's output holds `text`; fails with its log when it exits or time runs out."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} did not say {text!r} within {seconds} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM to the group (twice: Prefect workers ignore the first), then SIGKILL what is left."""
        for _ in range(2):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=grace / 2)
            except subprocess.TimeoutExpired:
                continue
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self._handle.close()
