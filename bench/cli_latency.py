"""How long commands that render nothing take to answer, this tree against an earlier revision, side by side.

Each command runs as a new process (`python -c "from cli.main import app; app()" ARGS`, what the `geoship` script
does) on one GEOSHIP_HOME with the embedded SQLite database, already migrated. The runs alternate between the
two trees, so that the machine's noise falls on both alike; the table shows the median and the fastest run.
Run:
  .venv/bin/python bench/cli_latency.py --base 468008a --runs 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (["--help"], ["status", "1"], ["projects", "list"], ["links", "list"], ["tools", "list"],
            ["export", "--help"])
ENTRY = "from cli.main import app; app()"


def _checkout(revision: str, into: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), revision], check=True,
                   capture_output=True)
    return into


def _seconds(tree: Path, args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", ENTRY, *args], cwd=tree, env={**env, "PYTHONPATH": str(tree)},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="an earlier revision to compare with (git worktree)")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="geoship-cli-latency-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GEOSHIP_", "PREFECT_", "RAY_"))}
        env["GEOSHIP_HOME"] = str(Path(tmp) / "home")
        trees = {"this tree": ROOT}
        if args.base:
            trees[args.base] = _checkout(args.base, Path(tmp) / "base")
        for tree in trees.values():  # migrate the database and warm the bytecode caches, untimed
            _seconds(tree, ["projects", "list"], env)
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.runs):
            for command in COMMANDS:
                for name, tree in trees.items():
                    times.setdefault((name, " ".join(command)), []).append(_seconds(tree, command, env))
        print(f"| command | {' | '.join(f'{n} median (fastest)' for n in trees)} |")
        print(f"| --- | {' | '.join('---:' for _ in trees)} |")
        for command in COMMANDS:
            label = " ".join(command)
            cells = [f"{statistics.median(times[(n, label)]):.2f} s ({min(times[(n, label)]):.2f})" for n in trees]
            print(f"| `geoship {label}` | {' | '.join(cells)} |")
        print(f"\n{args.runs} runs each, alternating; Python {sys.version.split()[0]}, {os.cpu_count()} cores")
        if args.base:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(trees[args.base])],
                           check=False, capture_output=True)


if __name__ == "__main__":
    main()
