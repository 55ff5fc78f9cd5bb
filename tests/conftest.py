"""Shared fixtures: config files written into tmp dirs, and the example warehouse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from connector.clock import NOW_VARIABLE

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

ANCHOR = date(2026, 11, 1)  # fixed, so the example rows are the same on every day
# Every run in the tests (in process or a CLI subprocess) takes the anchor as "now", so
# no test depends on the real date; a test wanting another "now" sets the variable.
os.environ[NOW_VARIABLE] = f"{ANCHOR.isoformat()}T00:00:00Z"
EXAMPLE_ROWS = 3000
SMALL_EXAMPLE_ROWS = 600
SECRET = "s3cr3t-Do-Not-Print-7f3a"
API_KEY = "key-Visible-Not-Secret-91"


def base_config(tmp: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A minimal valid config dict for a source in `tmp`, with sections overridden."""
    config: dict[str, Any] = {
        "source": {"database": "warehouse.duckdb", "query": "query.sql", "chunk_rows": 1000},
        "destination": {
            "base_url": "http://127.0.0.1:9",
            "api_key": API_KEY,
            "api_secret": SECRET,
        },
        "ledger": {"path": "ledger.duckdb"},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


def write_config(tmp: Path, config: dict[str, Any], name: str = "config.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def example_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example warehouse (DuckDB file, Parquet export, manifest) built once."""
    from build_warehouse import build

    out = tmp_path_factory.mktemp("example")
    build(out, rows=EXAMPLE_ROWS, seed=7, anchor=ANCHOR)
    return out


@pytest.fixture(scope="session")
def manifest(example_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((example_dir / "warehouse.manifest.json").read_text())
    return data


@pytest.fixture(scope="session")
def small_example(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A 600-row example warehouse and its manifest, for the many runs of chaos tests."""
    from build_warehouse import build

    out = tmp_path_factory.mktemp("small_example")
    return out, build(out, rows=SMALL_EXAMPLE_ROWS, seed=11, anchor=ANCHOR)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server (tests/postgres_server.py), started once for the session."""
    from postgres_server import PostgresServer

    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_example(postgres: Any, example_dir: Path) -> str:
    """The URI of a Postgres database holding the example warehouse's `orders`, loaded by
    examples/load_postgres.py as a user would load it."""
    from load_postgres import load

    postgres.execute("CREATE DATABASE example")
    uri: str = postgres.uri("example")
    load(uri, example_dir / "warehouse.duckdb")
    return uri


def warehouse_config(
    tmp: Path,
    url: str,
    query: str = "conversions_postgres.sql",
    chunk_rows: int = 1000,
    **warehouse: Any,
) -> Path:
    """A config that syncs from Postgres (`source.warehouse`, its URI `${WAREHOUSE_URI}`: run
    the CLI with `env={"WAREHOUSE_URI": ...}`) to the sandbox at `url`."""
    source = {
        "warehouse": {"driver": "postgresql", "uri": "${WAREHOUSE_URI}", **warehouse},
        "query": str(REPO / "sql" / query) if "/" not in query else query,
        "chunk_rows": chunk_rows,
    }
    config = base_config(tmp, destination=sandbox_destination(url))
    config["source"] = source
    return write_config(tmp, config)


def sandbox_destination(url: str) -> dict[str, Any]:
    """The `destination` section of a config sending to the sandbox at `url`, fast."""
    return {
        "base_url": url,
        "api_key": "sandbox-key",
        "api_secret": "sandbox-secret",
        "max_batches_per_second": 20_000,
        "retry_base_s": 0.05,
        "retry_max_s": 0.5,
    }


# Rows the chaos and crash tests add (one per scenario); printed as a table at the end.
CHAOS_TABLE: list[dict[str, Any]] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker hands its chaos rows to the controller, which prints the table."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["chaos_table"] = json.dumps(CHAOS_TABLE, default=str)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    CHAOS_TABLE.extend(json.loads(getattr(node, "workeroutput", {}).get("chaos_table", "[]")))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not CHAOS_TABLE:
        return
    columns = list(CHAOS_TABLE[0])
    cells = [columns, *([str(row[c]) for c in columns] for row in CHAOS_TABLE)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    terminalreporter.section("chaos: what the ledger and the sandbox saw under each fault")
    for line in cells:
        terminalreporter.write_line(
            " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m connector ARGS` as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        check=False,
    )


def sigkill_sync_when(
    config: Path,
    window: list[str],
    ready: Callable[[], bool],
    env: dict[str, str] | None = None,
    poll_s: float = 0.05,
) -> None:
    """Start `rokt-connector sync` and SIGKILL it once `ready()` (what the sandbox has
    seen, polled: no timer is waited out); fails if the sync ends first."""
    args = [sys.executable, "-m", "connector", "sync", "--config", str(config), *window]
    process = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    try:
        deadline = time.monotonic() + 60
        while not ready():
            assert process.poll() is None, "the sync ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(poll_s)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)


class SandboxProcess:
    """`rokt-connector sandbox` running on a free loopback port."""

    def __init__(self, *options: str) -> None:
        self.options = options
        self._start(port=0)

    def _start(self, port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "connector", "sandbox", "--port", str(port), *self.options],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("sandbox listening on "):
            self.stop()
            raise RuntimeError(f"sandbox did not start: {line!r}")
        self.url = line.removeprefix("sandbox listening on ").strip()

    def kill(self) -> None:
        """SIGKILL: requests in flight break off, new connections are refused."""
        self.process.kill()
        self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()

    def restart(self) -> None:
        """Start it again on the same port with the same options (`--journal` remembers)."""
        self._start(port=int(self.url.rsplit(":", 1)[1]))

    def get(self, path: str) -> Any:
        return httpx.get(self.url + path, timeout=10).json()

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.get("/_sandbox/stats")
        return stats

    def accepted_refs(self) -> list[str]:
        return [b["confirmationref"] for b in self.records()]

    def records(self) -> list[dict[str, Any]]:
        """Every accepted batch (`source_request_id`, `confirmationref`, `receipts`, ...)."""
        total = self.get("/_sandbox/batches?limit=0")["total"]
        records: list[dict[str, Any]] = self.get(f"/_sandbox/batches?limit={total}")["batches"]
        return records

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


@pytest.fixture
def sandbox_factory() -> Iterator[Any]:
    """Start sandboxes with given options; all are stopped after the test."""
    started: list[SandboxProcess] = []

    def start(*options: str) -> SandboxProcess:
        started.append(SandboxProcess(*options))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def sync_config(
    tmp: Path, example_dir: Path, url: str, chunk_rows: int = 1000, **destination: Any
) -> Path:
    """A config that syncs the example warehouse to the sandbox at `url`."""
    per_request = destination.get("transport", "events_api") != "events_api"
    rate = "max_requests_per_second" if per_request else "max_batches_per_second"
    config = base_config(
        tmp,
        source={
            "database": str(example_dir / "warehouse.duckdb"),
            "query": str(REPO / "sql" / "conversions.sql"),
            "chunk_rows": chunk_rows,
        },
        destination={
            "base_url": url,
            "api_key": "sandbox-key",
            "api_secret": "sandbox-secret",
            rate: 20_000,
            "retry_base_s": 0.05,
            "retry_max_s": 0.5,
            **destination,
        },
    )
    return write_config(tmp, config)


PIXEL_KINDS = ("pixel", "rudderstack_pixel")
# What each pixel transport needs, as a user writes it (the sandbox's default keys).
PIXEL_KEYS: dict[str, dict[str, str]] = {
    "pixel": {"api_key": "sandbox-key"},
    "rudderstack_pixel": {"write_key": "sandbox-write-key"},
}


def for_transport(destination: dict[str, Any]) -> dict[str, Any]:
    """`destination` with only the keys its transport reads: no Event API secret (nor,
    for RudderStack, the API key), the rate as `max_requests_per_second`."""
    kind = destination.get("transport", "events_api")
    if kind == "events_api":
        return destination
    unused = {"api_secret"} | ({"api_key"} if kind == "rudderstack_pixel" else set())
    kept = {k: v for k, v in destination.items() if k not in unused}
    if "max_batches_per_second" in kept:
        kept["max_requests_per_second"] = kept.pop("max_batches_per_second")
    return kept


def pixel_sync_config(
    tmp: Path, example_dir: Path, url: str, kind: str, chunk_rows: int = 1000, **destination: Any
) -> Path:
    """`sync_config` for the pixel transport `kind`, with only the keys it reads."""
    path = sync_config(
        tmp, example_dir, url, chunk_rows, transport=kind, **(PIXEL_KEYS[kind] | destination)
    )
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["destination"] = for_transport(config["destination"])
    return write_config(tmp, config)
