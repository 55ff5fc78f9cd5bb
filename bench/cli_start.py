"""Benchmark: how long `rokt-connector --help` and `--version` take to answer (target
0.2 s each), and the memory they use.

Runs each command `--runs` times (default 5) as the console script next to this
Python (or `python -m connector` without one) and prints, per command, the best wall
time, the best CPU time (user + system: what the command costs on an idle machine)
and the largest peak RSS of the runs. `--repo DIR` measures the connector package of
another checkout instead (`python -m connector` run in DIR), e.g. to compare with main.

Usage: python bench/cli_start.py [--runs N] [--repo DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (["--help"], ["--version"])


def program(repo: Path | None) -> list[str]:
    """The CLI's command: the console script, or `python -m connector` (always for
    another checkout: its script would run this checkout's package)."""
    script = Path(sys.executable).parent / "rokt-connector"
    return (
        [str(script)] if script.exists() and repo is None else [sys.executable, "-m", "connector"]
    )


def measure(command: list[str], env: dict[str, str], cwd: Path | None) -> tuple[float, float, int]:
    """One run: wall seconds, CPU seconds and peak RSS (KB) of the command's process."""
    started = time.perf_counter()
    child = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, _, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = 0  # reaped above: Popen must not wait for it again
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repo", type=Path, help="measure this checkout's package")
    args = parser.parse_args()
    env = {**os.environ, "COLUMNS": "100"}
    print(f"{'command':<12} {'best wall':>10} {'best cpu':>10} {'peak RSS':>10}")
    for options in COMMANDS:
        command = [*program(args.repo), *options]
        measure(command, env, args.repo)  # warm the caches
        runs = [measure(command, env, args.repo) for _ in range(args.runs)]
        wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
        rss = max(r[2] for r in runs)
        print(f"{' '.join(options):<12} {wall:>9.3f}s {cpu:>9.3f}s {rss / 1024:>7.0f} MB")


if __name__ == "__main__":
    main()
