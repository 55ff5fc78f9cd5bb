"""Secrets and raw PII never leave the connector (issue 4.5).

Every CLI command runs, table-driven, with a distinctive API key and secret (read
from the environment, as in production) over the example warehouse, on its success
and failure paths. Each run's stdout, stderr (logs, progress bar, errors), JSON
reports, the ledger (every text column of every table, and the raw bytes of the
file, its WAL and marker) and every other file it wrote are scanned for the key, the
secret, the Basic credentials and every raw email, first name, last name and phone
of the source (as given, trimmed, lower-cased; phones also as digits only). The
pixel transports' cases add their keys, which travel in every request's URL: the
Pixel Service's API key (in the path) and RudderStack's write key (in the query);
httpx's own log lines, when an application logs httpx at DEBUG, show neither, nor the
query. TLS verification stays on, `http://` is for loopback only, and what the
connector writes is owner-only.
"""

from __future__ import annotations

import ast
import base64
import io
import logging
import os
import pty
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import trustme
import typer.main
from conftest import (
    PIXEL_KINDS,
    REPO,
    SandboxProcess,
    base_config,
    cli,
    for_transport,
    write_config,
)

import connector
from connector.cli import app
from connector.config import load_config
from connector.engine import run as engine
from connector.errors import ConfigError

pytestmark = pytest.mark.e2e
KEY = "key-Leak-Probe-3c9e7d41"
SECRET = "secret-Leak-Probe-8f21ab90"
WRITE_KEY = "write-Leak-Probe-6d0e5a13"  # RudderStack's
ENV = {"ROKT_LEAK_KEY": KEY, "ROKT_LEAK_SECRET": SECRET, "ROKT_LEAK_WRITE_KEY": WRITE_KEY}
WINDOW = ["--since", "2026-09-01", "--until", "2026-11-02"]
SINCE, UNTIL = datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
BACKFILL = ["--since", "2026-10-02", "--until", "2026-11-01", "--window", "1w"]
StartSandbox = Callable[..., SandboxProcess]
SANDBOX_OPTIONS = [
    *("--api-key", KEY, "--api-secret", SECRET, "--write-key", WRITE_KEY),
    *("--reject-rate", "0.05", "--seed", "1"),
]


# ------------------------------------------------------------------- what to find


_PHONEISH = re.compile(r"\+?\d[\d\s().\-]{5,24}\d")  # bounded: binary data has long runs
_WORD = re.compile(r"\w+(?:['\u2019-]\w+)*")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
# A report's SVG says "none" for no fill; the example's email "none" is another matter.
_SVG_NONE = re.compile(rb'\b(?:display|fill|stroke|pointer-events)="none"')


@dataclass(frozen=True)
class Needles:
    """What must never be found, found fast enough to scan megabytes for thousands."""

    exact: dict[str, str]  # found as substrings: the secrets, emails without an @
    emails: dict[str, set[str]]  # domain -> local parts, of every form
    phones: frozenset[str]  # digits only
    names: dict[str, str]  # as given, trimmed, lower-cased -> first / last name

    def find(self, where: str, text: str, names: bool = True) -> list[str]:
        found = [f"{what} {n!r} in {where}" for n, what in self.exact.items() if n in text]
        for at in re.finditer("@", text):  # each @: do a known domain and local part meet?
            after, before = (
                text[at.end() : at.end() + 256],
                text[max(0, at.start() - 64) : at.start()],
            )
            for domain, locals_ in self.emails.items():
                if after.startswith(domain):
                    found += [
                        f"email {f'{local}@{domain}'!r} in {where}"
                        for local in locals_
                        if before.endswith(local)
                    ]
        found += [
            f"phone {t!r} in {where}"
            for t in set(_PHONEISH.findall(text))
            if re.sub(r"\D", "", t) in self.phones
        ]
        if names:  # whole words, single or two in a row (e.g. "Mary Ann")
            words = _WORD.findall(text)
            tokens = set(words) | {f"{a} {b}" for a, b in pairwise(words)}
            found += [f"{self.names[t]} {t!r} in {where}" for t in tokens if t in self.names]
        return found

    def find_bytes(self, where: str, data: bytes) -> list[str]:
        """Raw file bytes: all but the names (too short to tell from compressed data)."""
        return self.find(f"the bytes of {where}", data.decode("latin-1"), names=False)


def _forms(value: str | None) -> set[str]:
    """A value as given, trimmed and lower-cased (3+ characters; not a SHA-256)."""
    stripped = (value or "").strip()
    if len(stripped) < 3 or _HEX64.fullmatch(stripped):
        return set()
    return {value or "", stripped, stripped.lower()}


@pytest.fixture(scope="module")
def needles(example_dir: Path) -> Needles:
    basic = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    exact = {KEY: "the API key", SECRET: "the API secret", basic: "the Basic credentials"}
    exact[WRITE_KEY] = "the write key"
    emails: dict[str, set[str]] = {}
    phones: set[str] = set()
    names: dict[str, str] = {}
    with duckdb.connect(str(example_dir / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql("SELECT customer_email, first_name, last_name, phone FROM orders")
        for email, first, last, phone in rows.fetchall():
            for form in _forms(email):
                local, at, domain = form.rpartition("@")
                if at and local:
                    emails.setdefault(domain, set()).add(local)
                else:
                    exact[form] = "email (not an address)"
            names |= dict.fromkeys(_forms(first), "first name")
            names |= dict.fromkeys(_forms(last), "last name")
            digits = re.sub(r"\D", "", phone or "")
            if len(digits) >= 7:
                phones.add(digits)
    addresses = sum(len(locals_) for locals_ in emails.values())
    assert addresses > 500 and len(names) > 100 and len(phones) > 500  # a real sample
    return Needles(exact, emails, frozenset(phones), names)


# -------------------------------------------------------------------- the cases


@dataclass
class Case:
    """One command run as a user runs it; `command` is its name in the CLI."""

    command: str
    args: list[str]
    exit_code: int
    config: dict[str, Any] = field(default_factory=dict)  # sections merged into the config
    query: str | None = None  # SQL replacing the example query
    sandbox: str = "main"  # main (accepts KEY/SECRET) | other (other credentials) | none
    terminal: bool = False  # stderr is a terminal: the progress bar draws
    expect: str = ""  # a phrase the run prints (proves the path was taken)
    synced: str = ""  # "ledger": start from a synced ledger; "marker": only its marker
    transport: str = "events_api"  # the destination's (a synced ledger is synced by it)


CASES: dict[str, Case] = {
    "validate --show": Case("validate", ["--show", "5"], 1, expect="redacted"),
    "validate --json --show": Case("validate", ["--json", "--show", "5"], 1, expect="payloads"),
    "sync --json": Case("sync", ["--json"], 1, expect='"accepted"'),
    "sync with progress bar and text logs": Case("sync", [], 1, terminal=True, expect="rows"),
    "sync --log-format json": Case("sync", ["--log-format", "json"], 1, expect="run_finished"),
    "sync --dry-run": Case("sync", ["--dry-run", "--json"], 1, expect="dry_run"),
    "sync, credentials refused": Case(
        "sync", ["--json"], 3, sandbox="other", expect="credentials refused"
    ),
    "sync, endpoint unreachable": Case(
        "sync",
        ["--json"],
        3,
        config={"destination": {"base_url": "http://127.0.0.1:9", "max_attempts": 2}},
        sandbox="none",
        expect="unreachable",
    ),
    "validate, config errors holding the secret": Case(
        "validate",
        [],
        2,
        config={
            "destination": {
                "pod": "${ROKT_LEAK_SECRET}",
                "base_url": "https://${ROKT_LEAK_KEY}:${ROKT_LEAK_SECRET}@example.com",
                "api_secret": ["${ROKT_LEAK_SECRET}"],
            }
        },
        expect="destination.pod",
    ),
    "sync, query error on a customer's email": Case(
        "sync",
        ["--json"],
        2,
        query="SELECT *, CAST(customer_email AS INTEGER) AS quantity FROM orders "
        "WHERE $since < $until",
        expect="Could not convert string '<value>'",
    ),
    "validate, query error on a customer's phone": Case(
        "validate",
        [],
        2,
        query="SELECT order_id AS confirmationref, strptime(phone, '%Y') AS event_time "
        "FROM orders WHERE $since < $until",
        expect='Could not parse string "<value>"',
    ),
    "ledger summary": Case("ledger summary", [], 0, synced="ledger", expect="conversions"),
    "ledger show REF": Case(
        "ledger show", ["ORD-0000001"], 0, synced="ledger", expect="ORD-0000001"
    ),
    "ledger show --identity": Case(
        "ledger show", ["--identity", "{identity}", "--json"], 0, synced="ledger", expect="ORD-"
    ),
    "ledger export csv": Case(
        "ledger export", ["--out", "{tmp}/export.csv"], 0, synced="ledger", expect="exported"
    ),
    "ledger export parquet": Case(
        "ledger export", ["--out", "{tmp}/export.parquet"], 0, synced="ledger", expect="exported"
    ),
    "ledger report": Case(
        "ledger report", ["--out", "{tmp}/report.html"], 0, synced="ledger", expect="wrote a report"
    ),
    "ledger summary, ledger missing": Case(
        "ledger summary", [], 2, synced="marker", expect="does not exist, but"
    ),
    "backfill --json": Case("backfill", [*BACKFILL, "--json"], 1, expect='"windows"'),
    "backfill with progress bar": Case("backfill", BACKFILL, 1, terminal=True, expect="windows"),
    "backfill --plan": Case("backfill", [*BACKFILL, "--plan"], 0, expect="rows"),
    "backfill, credentials refused": Case(
        "backfill", [*BACKFILL, "--json"], 3, sandbox="other", expect="credentials refused"
    ),
    "ledger reconcile": Case("ledger reconcile", [], 0, synced="ledger", expect="Reconciled"),
    "audiences sync --json": Case(
        "audiences sync",
        ["--json"],
        1,  # the sandbox's --reject-rate
        config={"audiences": {"query": str(REPO / "sql" / "audiences.sql")}},
        expect='"adds"',
    ),
    "audiences status": Case("audiences status", [], 0, synced="ledger", expect="audience"),
    "ledger reconcile --json, query error": Case(
        "ledger reconcile",
        ["--json"],
        2,
        synced="ledger",
        query="SELECT order_id AS confirmationref, CAST(phone AS INTEGER) AS x FROM orders "
        "WHERE $since < $until",
        expect="Could not convert string '<value>'",
    ),
    # the pixel transports: their keys are in every URL, the values sent in its query
    "pixel: validate --json --show": Case(
        "validate", ["--json", "--show", "5"], 1, expect="dt=AppEvent", transport="pixel"
    ),
    "pixel: sync --log-format json": Case(
        "sync",
        ["--log-format", "json", "--limit", "500"],
        1,
        expect="run_finished",
        transport="pixel",
    ),
    "pixel: sync --json": Case(
        "sync", ["--json", "--limit", "500"], 1, expect='"accepted"', transport="pixel"
    ),
    "pixel: sync, key refused": Case(
        "sync",
        ["--json"],
        3,
        sandbox="other",
        expect="credentials refused (HTTP 403); check destination.api_key",
        transport="pixel",
    ),
    "pixel: backfill --plan": Case(
        "backfill", [*BACKFILL, "--plan"], 0, expect="rows", transport="pixel"
    ),
    "pixel: ledger show REF": Case(
        "ledger show", ["ORD-0000001"], 0, synced="ledger", expect="pixel", transport="pixel"
    ),
    "pixel: ledger export csv": Case(
        "ledger export",
        ["--out", "{tmp}/export.csv"],
        0,
        synced="ledger",
        expect="exported",
        transport="pixel",
    ),
    "rudderstack_pixel: validate --show": Case(
        "validate", ["--show", "5"], 1, expect="anonymousId=", transport="rudderstack_pixel"
    ),
    "rudderstack_pixel: sync --log-format json": Case(
        "sync",
        ["--log-format", "json", "--limit", "500"],
        1,
        expect="run_finished",
        transport="rudderstack_pixel",
    ),
    "rudderstack_pixel: sync with progress bar and text logs": Case(
        "sync", ["--limit", "500"], 1, terminal=True, expect="rows", transport="rudderstack_pixel"
    ),
    "rudderstack_pixel: sync, endpoint unreachable": Case(
        "sync",
        ["--json"],
        3,
        config={"destination": {"base_url": "http://127.0.0.1:9", "max_attempts": 2}},
        sandbox="none",
        expect="unreachable",
        transport="rudderstack_pixel",
    ),
    "rudderstack_pixel: ledger export parquet": Case(
        "ledger export",
        ["--out", "{tmp}/export.parquet"],
        0,
        synced="ledger",
        expect="exported",
        transport="rudderstack_pixel",
    ),
    "rudderstack_pixel: ledger reconcile": Case(
        "ledger reconcile",
        [],
        1,  # its ledger holds the first 600 rows: the rest are missing
        synced="ledger",
        expect="Reconciled",
        transport="rudderstack_pixel",
    ),
}
# When a command is added to the CLI, add its cases above: the test below fails
# until every command has one.
COVERED_ELSEWHERE = {"sandbox": "test_what_the_platform_received_holds_no_raw_pii"}


def _commands() -> set[str]:
    """Every command of the CLI ("ledger show" for a command of a group)."""
    group: Any = typer.main.get_command(app)
    names = set()
    for name, command in group.commands.items():
        subcommands = getattr(command, "commands", None)  # a group of commands
        names |= {f"{name} {sub}" for sub in subcommands} if subcommands else {name}
    return names


def test_every_command_has_a_case() -> None:
    covered = {case.command for case in CASES.values()} | set(COVERED_ELSEWHERE)
    missing = sorted(_commands() - covered)
    assert not missing, f"add cases to CASES in tests/test_leaks.py for: {missing}"


# ---------------------------------------------------------------------- running


def _sandbox_with_output(tmp: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """A sandbox accepting KEY/SECRET, everything it prints kept in a file."""
    log = tmp / "sandbox.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*(sys.executable, "-m", "connector", "sandbox", "--port", "0"), *SANDBOX_OPTIONS],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while not (first := log.read_text(encoding="utf-8", errors="replace").partition("\n"))[1]:
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)  # polling the other process for readiness, not waiting out a timer
    url = first[0].removeprefix("sandbox listening on ").strip()
    assert url.startswith("http://127.0.0.1:"), first[0]
    return process, url, log


@pytest.fixture(scope="module")
def main_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    process, url, log = _sandbox_with_output(tmp_path_factory.mktemp("sandbox"))
    yield url, log
    process.terminate()
    process.wait(timeout=10)


def destination(url: str, transport: str, from_env: bool = True) -> dict[str, Any]:
    """The destination of `transport` at `url`, its keys read from the environment (ENV)
    as in production, or (`from_env` false) written in the config; no rate limit to
    speak of."""
    keys = {"api_key": KEY, "api_secret": SECRET, "write_key": WRITE_KEY}
    if from_env:
        keys = {name: f"${{{variable}}}" for variable, name in zip(ENV, keys, strict=True)}
    if transport != "rudderstack_pixel":
        del keys["write_key"]
    values = {"base_url": url, "transport": transport, "max_batches_per_second": 20_000}
    return for_transport(values | keys)


@pytest.fixture(scope="module")
def synced_ledgers(
    tmp_path_factory: pytest.TempPathFactory, example_dir: Path, main_sandbox: tuple[str, Path]
) -> Callable[[str], Path]:
    """The folder of a ledger (and its marker) after a sync of the example warehouse by
    a transport, for the audit commands to read; each synced once, when first asked."""
    synced: dict[str, Path] = {}

    def ledger_of(transport: str) -> Path:
        if transport not in synced:
            tmp = tmp_path_factory.mktemp(f"synced_{transport}")
            config = base_config(
                tmp,
                source={
                    "database": str(example_dir / "warehouse.duckdb"),
                    "query": str(REPO / "sql" / "conversions.sql"),
                },
                destination=destination(main_sandbox[0], transport, from_env=False),
            )
            # a pixel sends one conversion per request: its ledger holds the first 600 rows
            limit = None if transport == "events_api" else 600
            loaded = load_config(write_config(tmp, config))
            report = engine.sync(loaded, SINCE, UNTIL, limit=limit)
            assert report.accepted > 500, report.message
            synced[transport] = tmp
        return synced[transport]

    return ledger_of


def _on_terminal(args: list[str]) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout piped)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "connector", *args],
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, **ENV, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(follower)
    seen = bytearray()
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not data:
            break
        seen += data
    os.close(leader)
    out, _ = process.communicate(timeout=120)
    return process.returncode, out.decode(), seen.decode(errors="replace")


def _ledger_text(path: Path) -> str:
    """Every text value of every table of the ledger."""
    parts = []
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.sql(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR'"
        ).fetchall()
        for table, column in columns:
            values = con.sql(f'SELECT DISTINCT "{column}" FROM "{table}"').fetchall()
            parts += [f"{table}.{column}={v}" for (v,) in values if v is not None]
    return "\n".join(parts)


@pytest.mark.parametrize("name", CASES)
def test_no_secret_and_no_raw_pii_anywhere(
    name: str,
    tmp_path: Path,
    example_dir: Path,
    needles: Needles,
    main_sandbox: tuple[str, Path],
    sandbox_factory: StartSandbox,
    synced_ledgers: Callable[[str], Path],
) -> None:
    case = CASES[name]
    url = main_sandbox[0]
    if case.sandbox == "other":
        url = sandbox_factory("--api-key", "other-key", "--api-secret", "other-secret").url
    query = tmp_path / "query.sql"
    if case.query:
        query.write_text(case.query, encoding="utf-8")
    else:
        query.write_text((REPO / "sql" / "conversions.sql").read_text(), encoding="utf-8")
    config = base_config(
        tmp_path,
        source={"database": str(example_dir / "warehouse.duckdb"), "query": "query.sql"},
        destination={**destination(url, case.transport), "retry_base_s": 0.01, "retry_max_s": 0.05},
    )
    for section, values in case.config.items():
        config[section] = {**config.get(section, {}), **values}
    inputs = {write_config(tmp_path, config), query}
    synced_ledger = synced_ledgers(case.transport if case.synced else "events_api")
    for name in {
        "ledger": ["ledger.duckdb", "ledger.duckdb.marker.json"],
        "marker": ["ledger.duckdb.marker.json"],
    }.get(case.synced, []):
        shutil.copy(synced_ledger / name, tmp_path / name)
    with duckdb.connect(str(synced_ledger / "ledger.duckdb"), read_only=True) as con:
        identity = con.sql(
            "SELECT identity_sha256 FROM ledger WHERE confirmationref = 'ORD-0000001'"
        ).fetchall()[0][0]
    window = WINDOW if case.command in ("validate", "sync", "ledger reconcile") else []
    extra = [a.replace("{identity}", identity).replace("{tmp}", str(tmp_path)) for a in case.args]
    args = [*case.command.split(), "--config", str(tmp_path / "config.yaml"), *window, *extra]
    if case.terminal:
        code, out, err = _on_terminal(args)
    else:
        result = cli(*args, env=ENV)
        code, out, err = result.returncode, result.stdout, result.stderr
    assert code == case.exit_code, err
    assert case.expect in out + err, (out, err)
    assert "Traceback" not in err

    found = needles.find("stdout", out) + needles.find("stderr", err)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p not in inputs]
    for path in written:
        data = path.read_bytes()
        found += needles.find_bytes(
            path.name, _SVG_NONE.sub(b"", data) if path.suffix == ".html" else data
        )
        if path.suffix == ".duckdb":
            found += needles.find(f"{path.name} tables", _ledger_text(path))
    assert not found, "\n".join(found[:20])
    if "--out" in case.args:
        assert Path(extra[case.args.index("--out") + 1]) in written  # the export is scanned
    for path in written:  # ledger, WAL, marker, exports: owner-only
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_what_the_platform_received_holds_no_raw_pii(
    main_sandbox: tuple[str, Path], needles: Needles
) -> None:
    """Run after the cases above synced into it: every batch the sandbox accepted
    carries hashes only, and the sandbox's own output never shows the credentials."""
    url, log = main_sandbox
    total = httpx.get(f"{url}/_sandbox/batches?limit=0", timeout=10).json()["total"]
    assert total > 1000  # the sync cases delivered the example's conversions
    received = [
        httpx.get(f"{url}/_sandbox/batches?offset={at}&limit=5000", timeout=30).text
        for at in range(0, total, 5000)
    ]
    found = needles.find("the batches the platform received", "\n".join(received))
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "listening on" in text
    found += needles.find("the sandbox's output", text)
    assert not found, "\n".join(found[:20])


@pytest.mark.parametrize("host", ["127.0.0.1", "LocalHost"])
@pytest.mark.parametrize("kind", PIXEL_KINDS)
def test_httpx_logs_at_debug_show_no_key_and_no_query(
    kind: str,
    host: str,
    tmp_path: Path,
    example_dir: Path,
    main_sandbox: tuple[str, Path],
    needles: Needles,
) -> None:
    """An application that embeds the connector and logs everything at DEBUG (what
    `logging.basicConfig(level=logging.DEBUG)` sets up) gets httpx's and httpcore's own
    lines: each request shows as its host alone, never the key (the Pixel Service's in
    the path, RudderStack's in the query) nor the values sent. Also for a base_url that
    httpx writes otherwise than the user did (a host name in capitals)."""
    url = main_sandbox[0].replace("127.0.0.1", host)
    config = base_config(
        tmp_path,
        source={
            "database": str(example_dir / "warehouse.duckdb"),
            "query": str(REPO / "sql" / "conversions.sql"),
        },
        destination=destination(url, kind, from_env=False),
    )
    path = write_config(tmp_path, config)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # as logging.basicConfig adds to the root
    handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        report = connector.sync(path, SINCE, UNTIL, limit=300)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    text = stream.getvalue()

    shown = f"GET http://{host.lower()}:{url.rsplit(':', 1)[1]}/<hidden> "
    requests = [line for line in text.splitlines() if "HTTP Request: GET" in line]
    assert len(requests) == report.requests > 200  # one line per request, each hidden
    assert all(shown in line for line in requests), requests[:3]
    assert "DEBUG:httpcore.http11:send_request_headers" in text  # really at DEBUG
    found = needles.find("the log at DEBUG", text)
    assert not found, "\n".join(found[:20])
    for sent in ("/v1/", "/pixel/v1/track", "writeKey", "dt=AppEvent", "properties.", "?"):
        assert sent not in text, f"{sent!r} in the log"


# ---------------------------------------------------------------------------- TLS


class _TlsServer:
    """An HTTPS server on loopback with a certificate from a test CA: it answers 202
    to whatever request reaches it, and counts handshakes and requests."""

    def __init__(self, ca: trustme.CA) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self._context = context
        self.requests = 0
        self.failed_handshakes = 0
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self._socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._socket.accept()
            except OSError:
                return
            try:
                with self._context.wrap_socket(raw, server_side=True) as conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536)
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
                    while len(body) < length:
                        body += conn.recv(65536)
                    self.requests += 1
                    conn.sendall(
                        b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
                    )
            except (ssl.SSLError, OSError):
                self.failed_handshakes += 1
                raw.close()

    def close(self) -> None:
        self._socket.close()


def test_the_sender_verifies_certificates(tmp_path: Path) -> None:
    """An HTTPS endpoint whose certificate no trusted CA signed gets no request (the
    handshake fails, the run ends unreachable, exit 3); the same endpoint, its CA
    trusted (SSL_CERT_FILE), receives the batches: verification is what stopped it."""
    ca = trustme.CA()
    server = _TlsServer(ca)
    try:
        with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
            con.execute(
                "CREATE TABLE o AS SELECT 'R' || i AS confirmationref, 'u' || i || '@x.co' "
                "AS email, 'purchase' AS conversiontype, TIMESTAMP '2026-10-20' AS event_time "
                "FROM range(3) r(i)"
            )
        (tmp_path / "query.sql").write_text("SELECT * FROM o WHERE $since < $until", "utf-8")
        config = base_config(
            tmp_path,
            destination={"base_url": server.url, "max_attempts": 2, "retry_base_s": 0},
        )
        path = write_config(tmp_path, config)
        refused = cli("sync", "--config", str(path), *WINDOW, "--json")
        assert refused.returncode == 3 and "unreachable" in refused.stderr
        assert server.requests == 0 and server.failed_handshakes >= 1
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        trusted = cli(
            "sync",
            "--config",
            str(path),
            *WINDOW,
            "--json",
            env={"SSL_CERT_FILE": str(tmp_path / "ca.pem")},
        )
        assert trusted.returncode == 0, trusted.stderr
        assert server.requests >= 1
    finally:
        server.close()


def test_no_code_path_turns_verification_off() -> None:
    """No `verify=` argument, no CERT_NONE, no check_hostname = False in the package."""
    offenders = []
    for path in sorted((REPO / "connector").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "verify":
                offenders.append(f"{path.name}:{node.value.lineno} verify=")
            if isinstance(node, ast.Attribute) and node.attr in (
                "CERT_NONE",
                "_create_unverified_context",
            ):
                offenders.append(f"{path.name}:{node.lineno} {node.attr}")
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Attribute) and t.attr == "check_hostname" for t in node.targets
            ):
                offenders.append(f"{path.name}:{node.lineno} check_hostname =")
    assert not offenders


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8787", True),
        ("http://[::1]:8787", True),
        ("http://LocalHost", True),
        ("http://example.com", False),
        ("http://10.0.0.1:8787", False),
        ("http://127.0.0.1.nip.io", False),
        ("http://0x7f000001", False),
        ("https://example.com", True),
    ],
)
def test_plain_http_only_for_loopback(tmp_path: Path, url: str, allowed: bool) -> None:
    destination = {"base_url": url, "environment": "production"}
    path = write_config(tmp_path, base_config(tmp_path, destination=destination))
    if allowed:
        assert load_config(path).destination.root_url == url.rstrip("/")
    else:
        with pytest.raises(ConfigError, match="only for loopback"):
            load_config(path)
