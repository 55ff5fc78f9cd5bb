"""The demo `make demo` runs: a real sync of the example warehouse into the sandbox.

Starts `rokt-connector sandbox` on a free loopback port, runs `rokt-connector sync
--config config.example.yaml` against it with a fresh demo ledger
(examples/demo-ledger.duckdb), prints the run report and the sandbox's stats, runs
the sync once more to show that nothing is sent twice, writes the audit's page
(`ledger report`, examples/demo-report.html), and stops the sandbox. The sandbox's key
and secret reach the config as ROKT_API_KEY / ROKT_API_SECRET.
Exit code: the first sync's (1 is expected: the example's dirty rows are rejected).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEDGER = REPO / "examples" / "demo-ledger.duckdb"
REPORT = REPO / "examples" / "demo-report.html"


def main() -> int:
    for suffix in ("", ".wal", ".marker.json"):  # a fresh demo ledger, on purpose
        LEDGER.with_name(LEDGER.name + suffix).unlink(missing_ok=True)
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "connector", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sandbox.stdout is not None
        line = sandbox.stdout.readline().strip()
        print(line, flush=True)
        url = line.removeprefix("sandbox listening on ")
        env = {
            **os.environ,
            "ROKT_BASE_URL": url,
            "ROKT_LEDGER_PATH": str(LEDGER),
            "ROKT_API_KEY": "sandbox-key",  # what the sandbox accepts
            "ROKT_API_SECRET": "sandbox-secret",
        }
        sync = [sys.executable, "-m", "connector", "sync", "--config", "config.example.yaml"]
        print(f"\n$ rokt-connector sync --config config.example.yaml   # into {url}", flush=True)
        first = subprocess.run(sync, env=env, cwd=REPO, check=False)
        with urllib.request.urlopen(f"{url}/_sandbox/stats", timeout=10) as response:
            stats = json.load(response)
        print("\nsandbox /_sandbox/stats:")
        print(json.dumps(stats, indent=2))
        print("\n$ rokt-connector sync --config config.example.yaml   # again: nothing to send")
        subprocess.run([*sync, "--json"], env=env, cwd=REPO, check=False)
        report = ["ledger", "report", "--config", "config.example.yaml", "--out"]
        print(f"\n$ rokt-connector {' '.join(report)} {REPORT.relative_to(REPO)}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "connector", *report, str(REPORT)],
            env=env,
            cwd=REPO,
            check=False,
        )
        return first.returncode
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
        if sandbox.stdout:
            sandbox.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
