"""Cold start of one `geoship export --wait` on the embedded defaults: SQLite, a local Ray started by the
command, Prefect's temporary local server, the local artifact directory.

Sets up a fresh GEOSHIP_HOME with the demo's two sample scenes (`geoship demo` once, not timed), then runs
`geoship export --project demo --wait` several times as a new process each, with no RAY_ADDRESS and no
PREFECT_API_URL. While it runs, this script polls the export row: the cold start is the time from launching
the command to the first tile written (tiles_done > 0), as the issue defines it. Run:
  .venv/bin/python bench/cold_start.py
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GEOSHIP = ROOT / ".venv" / "bin" / "geoship"
OUT = ROOT / "bench" / "out"


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PREFECT_API_URL")}
    env.update(GEOSHIP_HOME=str(home), RAY_USAGE_STATS_ENABLED="0", PREFECT_HOME=str(home / "prefect"))
    return env


def latest_export(database: Path) -> tuple[int, int, str] | None:
    """(id, tiles_done, status) of the newest export, or None before there is one."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT id, tiles_done, status FROM export ORDER BY id DESC LIMIT 1").fetchone()
    except sqlite3.Error:
        return None


def one_run(home: Path, previous_id: int) -> dict[str, float]:
    database = home / "geoship.db"
    started = time.perf_counter()
    process = subprocess.Popen([str(GEOSHIP), "export", "--project", "demo", "--color-correct", "--wait"],
                               env=environment(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marks: dict[str, float] = {}
    while process.poll() is None:
        row = latest_export(database)
        now = time.perf_counter() - started
        if row and row[0] > previous_id:
            marks.setdefault("row_written_s", now)
            if row[2] == "rendering":
                marks.setdefault("rendering_s", now)
            if row[1] and row[1] > 0:
                marks.setdefault("first_tile_s", now)
        time.sleep(0.05)
    marks["exit_s"] = time.perf_counter() - started
    marks["exit_code"] = process.returncode
    return {k: round(v, 2) for k, v in marks.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="geoship-cold-") as tmp:
        home = Path(tmp)
        subprocess.run([str(GEOSHIP), "demo"], env=environment(home), check=True, stdout=subprocess.DEVNULL)
        runs = []
        for _ in range(args.repeats):
            previous = latest_export(home / "geoship.db")[0]
            runs.append(one_run(home, previous))
            print(json.dumps(runs[-1]), flush=True)
    keys = [k for k in runs[0] if k.endswith("_s")]
    result = {"runs": runs, "median": {k: statistics.median(r[k] for r in runs if k in r) for k in keys},
              "cpus": os.cpu_count(), "command": "geoship export --project demo --color-correct --wait"}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cold_start.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    sys.exit(0 if all(r["exit_code"] == 0 for r in runs) else 1)


if __name__ == "__main__":
    main()
