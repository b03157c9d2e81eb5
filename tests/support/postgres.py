"""A throwaway PostgreSQL cluster in a temporary directory, for tests.

`initdb` refuses to run as root, so as root the cluster is created and run as the `postgres` user in a
directory that user owns. The server listens on 127.0.0.1 only, with fsync off (throwaway data).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.net import free_port


class ThrowawayPostgres:
    """`start()` returns a SQLAlchemy URL to an empty database; `stop()` ends the server and removes its files."""

    def __init__(self, database: str = "geoship_test"):
        self.database = database
        self.directory = Path(tempfile.mkdtemp(prefix="geoship-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        for tool in ("initdb", "pg_ctl"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} not found on PATH: install PostgreSQL's server binaries")
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "server.log"), "-w", "-o", options, "start")
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{self.database}"')
        connection.close()
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{self.database}"

    def restart(self) -> None:
        """Stop and start the server (fast shutdown: sessions are cut), as a failover or upgrade would."""
        # With -l the server's output goes to its log, not to a pipe this call would wait on forever.
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "server.log"), "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
