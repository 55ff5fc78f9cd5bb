"""Hostile source rows (issue 4.4) through the real source (a DuckDB file, Parquet)
and the real transform/payload: any unicode, huge strings, NaN/inf amounts,
far-future, pre-1970 and infinite timestamps, SQL-looking values, exotic column
types and 10,000 columns give each row a valid payload (the sandbox's own checks
pass) or a reason code, or stop with a clear error; never an exception, never an
oversized request. Query parameters and paths are bound or quoted, never
interpolated: SQL in a value, a window bound or a file name runs nowhere."""

from __future__ import annotations

import json
import socket
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import yaml
from conftest import SandboxProcess, base_config, cli, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.config import Config, load_config
from connector.engine.prepare import prepare
from connector.errors import SourceError
from connector.sandbox.checks import check_batch
from connector.sources import duckdb as source
from connector.spec import MAX_BATCH_BYTES, MAX_BATCHES_PER_REQUEST, MAX_REQUEST_BYTES, REASONS

NOW = datetime(2026, 11, 1, tzinfo=UTC)  # conftest pins every run's "now" here
SINCE, UNTIL = datetime(2000, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
WINDOW = ["--since", "2000-01-01", "--until", "2027-01-01"]
QUERY = "SELECT * FROM orders WHERE $since <= $until"
SQLISH = [
    "'; DROP TABLE orders; --",
    "Robert'); DROP TABLE Students;--",
    '" OR "1"="1',
    "1; SELECT * FROM ledger",
    "$since",
    "${ROKT_API_SECRET}",
    "\\'; COPY (SELECT 1) TO 'pwned.csv'; --",
]


def warehouse(tmp: Path, frame: pl.DataFrame, **mapping: Any) -> Config:
    """`frame` as table `orders` in a DuckDB file, and a config reading all of it."""
    path = tmp / "warehouse.duckdb"
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as con:
        con.register("frame", frame)
        con.execute("CREATE TABLE orders AS SELECT * FROM frame")
    (tmp / "query.sql").write_text(QUERY, encoding="utf-8")
    return load_config(write_config(tmp, base_config(tmp, mapping=mapping)))


def outcomes(config: Config) -> tuple[int, list[str], list[dict[str, Any]]]:
    """(rows read, reasons, sent batches) of the front half of a run; every request is
    checked as the platform would: size, count, strict JSON, the sandbox's checks."""
    read, reasons, batches = 0, [], []
    for part in prepare(config, SINCE, UNTIL, NOW):
        read += part.rows_read
        accounted = part.encoded.height + part.rejected.height + part.duplicates + part.skipped
        assert accounted == part.rows_read
        reasons += part.rejected["_reason"].to_list()
        for request in part.requests:
            body = request.body(part.encoded["_body"])
            assert len(body) == request.size <= MAX_REQUEST_BYTES
            sent = json.loads(body, parse_constant=_no_constant)
            assert 1 <= len(sent) <= MAX_BATCHES_PER_REQUEST
            for batch in sent:
                compact = json.dumps(batch, separators=(",", ":"), ensure_ascii=False)
                assert len(compact.encode()) <= MAX_BATCH_BYTES
                check_batch(batch)  # raises on what the platform would reject
            batches += sent
    assert set(reasons) <= set(REASONS), reasons
    return read, reasons, batches


def _no_constant(name: str) -> None:
    raise AssertionError(f"{name} in a request body")


# ---------------------------------------------------------------- hypothesis

hostile_text = st.one_of(
    st.text(),
    st.sampled_from(SQLISH),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["x", "é", "😀", "'", "\x00"]), st.integers(1, 9000)
    ),
)
recent = st.datetimes(NOW.replace(tzinfo=None) - timedelta(days=29), NOW.replace(tzinfo=None))
any_time = st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59))
ROW = st.fixed_dictionaries(
    {
        "confirmationref": st.one_of(st.integers(0, 50).map("ORD-{}".format), hostile_text),
        "email": st.one_of(st.emails(), st.emails(), hostile_text, st.none()),
        "firstname": st.one_of(st.none(), hostile_text),
        "mobile": st.one_of(st.none(), hostile_text, st.just("+1 (555) 123-4567")),
        "conversiontype": st.one_of(st.just("purchase"), hostile_text),
        "amount": st.one_of(st.none(), st.floats()),  # nan, +-inf, -0.0, 1e308
        "event_time": st.one_of(recent, recent, any_time),
        "dob": st.one_of(st.none(), st.dates()),
        "coupon_code": st.one_of(st.none(), hostile_text),  # not in the spec: an attribute
    }
)
SCHEMA = {
    "confirmationref": pl.String,
    "email": pl.String,
    "firstname": pl.String,
    "mobile": pl.String,
    "conversiontype": pl.String,
    "amount": pl.Float64,
    "event_time": pl.Datetime("us"),
    "dob": pl.Date,
    "coupon_code": pl.String,
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, min_size=1, max_size=12), as_text=st.booleans())
def test_any_row_is_a_valid_batch_or_a_reason_code(
    rows: list[dict[str, Any]], as_text: bool
) -> None:
    frame = pl.DataFrame(rows, schema=SCHEMA)
    if as_text:  # the same instants as ISO 8601 text, as many warehouses export them
        frame = frame.with_columns(pl.col("event_time").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ"))
    with tempfile.TemporaryDirectory() as tmp:
        config = warehouse(Path(tmp), frame)
        read, _, batches = outcomes(config)
        with duckdb.connect(str(config.source.database), read_only=True) as con:
            assert con.sql("SELECT count(*) FROM orders").fetchall() == [(len(rows),)]
    assert read == len(rows)
    sent_refs = [b["events"][0]["data"]["custom_attributes"]["confirmationref"] for b in batches]
    given_refs = {(r["confirmationref"] or "").strip() for r in rows}
    assert set(sent_refs) <= given_refs  # values travel as data, verbatim (trimmed)


# --------------------------------------------- DuckDB's own extremes, as a user has them


def _row(ref: str, **sql: str) -> str:
    """One order as SQL: a valid one, but for the given columns (SQL expressions)."""
    row = {
        "email": "'buyer@example.com'",
        "amount": "10.0",
        "event_time": "'2026-10-20 12:00+00'",
        "dob": "NULL",
        "coupon_code": "NULL",
    } | sql
    quoted = "'" + ref.replace("'", "''") + "'"
    return (
        f"({quoted}, {row['email']}, {row['amount']}::DOUBLE, "
        f"{row['event_time']}::TIMESTAMPTZ, {row['dob']}::DATE, {row['coupon_code']}::VARCHAR)"
    )


SQL_REF = "'; DROP TABLE orders; --"
HOSTILE_ROWS = [
    _row("ok"),
    _row(" \t"),  # blank: no confirmationref
    _row("nan", amount="'nan'"),
    _row("inf", amount="'inf'"),
    _row("-inf", amount="'-inf'"),
    _row("t-inf", event_time="'infinity'"),
    _row("t--inf", event_time="'-infinity'"),
    _row("y290000", event_time="'290000-01-01'"),
    _row("y9999", event_time="'9999-12-31 23:59:59+00'"),
    _row("y1969", event_time="'1969-12-31 23:59:59+00'"),
    _row("y0001", event_time="'0001-01-01 00:00:00+00'"),
    _row("dob-inf", dob="'infinity'"),
    _row("dob-far", dob="'20000-01-01'"),
    _row(SQL_REF),
    _row("sql-email", email="'''; DROP TABLE orders; --'"),
    _row("huge", coupon_code="repeat('x', 5000)"),
    _row("unicode", email="'ZOË@EXAMPLE.COM'", dob="'1990-02-03'", coupon_code="'李小龍 😀'"),
]
# a bad amount or dob is left out: the row is sent without it (a field warning)
HOSTILE_VALID = ["ok", "nan", "inf", "-inf", "dob-inf", "dob-far", SQL_REF, "unicode"]
HOSTILE_WARNINGS = {"invalid_amount": 3, "invalid_dob": 2}
HOSTILE_REJECTED = {
    "missing_confirmationref": 1,
    "invalid_event_time": 3,
    "too_old": 2,
    "future_event_time": 1,  # y9999: a valid time, but not yet
    "invalid_email": 1,
    "attribute_value_too_long": 1,
}


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """The rows above in a DuckDB file and a Parquet file, with a config for each."""
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute(
            "CREATE TABLE orders AS SELECT *, 'purchase' AS conversiontype FROM (VALUES "
            + ",".join(HOSTILE_ROWS)
            + ") AS t(confirmationref, email, amount, event_time, dob, coupon_code)"
        )
        con.execute(f"COPY orders TO '{tmp_path / 'orders.parquet'}' (FORMAT parquet)")
    (tmp_path / "query.sql").write_text(QUERY, "utf-8")
    write_config(tmp_path, base_config(tmp_path), "duckdb.yaml")
    parquet = base_config(tmp_path, source={"parquet": {"orders": "orders.parquet"}})
    del parquet["source"]["database"]
    write_config(tmp_path, parquet, "parquet.yaml")
    return tmp_path


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_validate_gives_every_extreme_row_a_reason(hostile: Path, kind: str) -> None:
    result = cli(
        "validate", "--config", str(hostile / f"{kind}.yaml"), *WINDOW, "--json", "--show", "20"
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["rejected_by_reason"] == HOSTILE_REJECTED
    assert report["warnings"] == HOSTILE_WARNINGS
    assert report["valid"] == len(HOSTILE_VALID) and report["rows_read"] == 17
    refs = [
        p["events"][0]["data"]["custom_attributes"]["confirmationref"] for p in report["payloads"]
    ]
    assert sorted(refs) == sorted(HOSTILE_VALID)  # the SQL-looking ref is just a value
    for payload in report["payloads"]:
        check_batch(payload)


@pytest.mark.e2e
def test_sync_sends_only_the_valid_rows_and_records_the_values_verbatim(
    hostile: Path, sandbox_factory: Any
) -> None:
    sandbox: SandboxProcess = sandbox_factory()
    config = hostile / "duckdb.yaml"
    data = yaml.safe_load(config.read_text())
    data["destination"] |= {
        "base_url": sandbox.url,
        "api_key": "sandbox-key",
        "api_secret": "sandbox-secret",
    }
    config.write_text(yaml.safe_dump(data))
    result = cli("sync", "--config", str(config), *WINDOW, "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["accepted"] == len(HOSTILE_VALID) and report["rejected"] == 0
    stats = sandbox.stats()
    assert stats["batches"] == len(HOSTILE_VALID) and stats["request_errors_by_code"] == {}
    assert sorted(sandbox.accepted_refs()) == sorted(HOSTILE_VALID)
    with duckdb.connect(str(hostile / "ledger.duckdb"), read_only=True) as con:
        ledger = dict(con.sql("SELECT confirmationref, status FROM ledger").fetchall())
        tables = {t for (t,) in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert ledger[SQL_REF] == "accepted"
    assert ledger["t-inf"] == "rejected_local" and len(ledger) == 16  # all but the blank ref
    assert {"ledger", "runs", "ledger_meta"} <= tables
    with duckdb.connect(str(hostile / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM orders").fetchall() == [(17,)]
    # the audit commands bind what the user types too: a ref, a file name
    shown = cli("ledger", "show", "--config", str(config), SQL_REF, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "accepted"
    out = hostile / "it's'); COPY (SELECT 1) TO 'pwned.csv'; --.csv"
    exported = cli("ledger", "export", "--config", str(config), "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert SQL_REF in out.read_text(encoding="utf-8")
    assert not list(hostile.glob("pwned*")) and not list(Path.cwd().glob("pwned*"))


# --------------------------------------------------------------- exotic column types

EXOTIC = {
    "INTERVAL '3 days'": "has type INTERVAL",
    "MAP {'a': 1}": "has type Map",
    "'ab'::BLOB": "has type Binary",
    "[1, 2]": "has type List",
    "{'a': 1}": "has type Struct",
    "1::VARINT": "has type Extension",
}


@pytest.mark.parametrize("expression", EXOTIC)
def test_a_column_of_an_exotic_type_is_a_clear_error(tmp_path: Path, expression: str) -> None:
    (tmp_path / "query.sql").write_text(
        f"SELECT 'R1' AS confirmationref, 'a@b.co' AS email, 'p' AS conversiontype, "
        f"TIMESTAMP '2026-10-20' AS event_time, {expression} AS extra "
        "WHERE $since <= $until",
        "utf-8",
    )
    config = base_config(tmp_path)
    del config["source"]["database"]
    with pytest.raises(SourceError, match=EXOTIC[expression]) as error:
        outcomes(load_config(write_config(tmp_path, config)))
    assert "CAST(extra AS VARCHAR)" in str(error.value)


def test_pattern_like_column_names_are_a_clear_error(tmp_path: Path) -> None:
    for name in ("*", "^a.*$"):
        frame = pl.DataFrame(
            {"confirmationref": ["R1"], "email": ["a@b.co"], "conversiontype": ["p"]}
        ).with_columns(pl.lit(datetime(2026, 10, 20)).alias("event_time"), pl.lit("v").alias(name))
        with pytest.raises(SourceError, match="rename it in the query"):
            outcomes(warehouse(tmp_path, frame))


# -------------------------------------------------------------------- many columns


def wide(tmp: Path, columns: int, values: list[str | None], **mapping: Any) -> Config:
    """Orders R0, R1, ... whose `columns` extra columns all hold the row's value."""
    frame = pl.DataFrame(
        {
            "confirmationref": [f"R{i}" for i in range(len(values))],
            "email": ["buyer@example.com"] * len(values),
            "conversiontype": ["purchase"] * len(values),
            "event_time": [datetime(2026, 10, 20)] * len(values),
        }
    ).with_columns(pl.Series(f"c{i:04d}", values, pl.String) for i in range(columns))
    return warehouse(tmp, frame, **mapping)


def test_10000_columns_stop_with_a_clear_error_or_are_ignored_on_request(tmp_path: Path) -> None:
    config = wide(tmp_path, 10_000, ["v", None])
    with pytest.raises(SourceError, match="returns 10000 columns the attribute spec does not"):
        outcomes(config)
    ignored = wide(tmp_path, 10_000, ["v", None], unknown_columns="ignore")
    read, reasons, batches = outcomes(ignored)
    assert (read, reasons, len(batches)) == (2, [], 2)
    assert batches[0]["events"][0]["data"]["custom_attributes"].keys() == {
        "confirmationref",
        "conversiontype",
    }
    refused = wide(tmp_path, 100, ["v"], unknown_columns="error")
    with pytest.raises(SourceError, match=r"c0000, .*, c0009 and 90 more"):
        outcomes(refused)


def test_the_most_attribute_columns_fit_or_are_rejected_as_too_large(tmp_path: Path) -> None:
    """90 extra columns (100 attributes per event, less the spec's 10) are sent; 4,000
    characters in each make a batch over 128 KB: rejected, never sent oversized."""
    read, reasons, batches = outcomes(wide(tmp_path, 90, ["v", "x" * 4000, None]))
    assert (read, reasons, len(batches)) == (3, ["batch_too_large"], 2)
    assert len(batches[0]["events"][0]["data"]["custom_attributes"]) == 92
    with pytest.raises(SourceError, match="at most 100"):
        outcomes(wide(tmp_path, 91, ["v"]))


@pytest.mark.e2e
def test_10000_parquet_columns_through_the_cli_send_nothing(
    tmp_path: Path, sandbox_factory: Any
) -> None:
    sandbox: SandboxProcess = sandbox_factory()
    config = wide(tmp_path, 10_000, ["v", "w"])
    with duckdb.connect(str(config.source.database)) as con:
        con.execute(f"COPY orders TO '{tmp_path / 'wide.parquet'}' (FORMAT parquet)")
    data = base_config(
        tmp_path,
        source={"parquet": {"orders": "wide.parquet"}},
        destination={
            "base_url": sandbox.url,
            "api_key": "sandbox-key",
            "api_secret": "sandbox-secret",
        },
    )
    del data["source"]["database"]
    path = write_config(tmp_path, data, "wide.yaml")
    result = cli("sync", "--config", str(path), *WINDOW)
    assert result.returncode == 2, result.stderr
    assert "returns 10000 columns" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert sandbox.stats()["requests"] == 0


# ------------------------------------------------- bound, never interpolated


def test_window_bounds_are_bound_parameters(tmp_path: Path) -> None:
    """Whatever `$since`/`$until` hold arrives in the query as a value: a string full of
    SQL comes back verbatim and runs nowhere."""
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("CREATE TABLE orders AS SELECT 1 AS x")
    (tmp_path / "query.sql").write_text(
        "SELECT $since::VARCHAR AS since_text, $until::VARCHAR AS until_text FROM orders",
        "utf-8",
    )
    config = load_config(write_config(tmp_path, base_config(tmp_path)))
    attack = "2026-01-01'); DROP TABLE orders; COPY (SELECT 1) TO 'pwned.csv'; --"
    chunks = list(source.chunks(config.source, attack, attack + "2"))  # type: ignore[arg-type]
    assert chunks[0].rows() == [(attack, attack + "2")]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM orders").fetchall() == [(1,)]
    assert not list(tmp_path.glob("pwned*"))


@pytest.mark.e2e
def test_window_options_with_sql_are_refused_before_any_query(tmp_path: Path) -> None:
    result = cli(
        "validate",
        "--config",
        str(write_config(tmp_path, base_config(tmp_path))),
        "--since",
        "2026-01-01'; DROP TABLE orders; --",
    )
    assert result.returncode == 2 and "--since" in result.stderr


def test_file_names_with_quotes_and_sql_are_quoted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DuckDB file and a Parquet directory named like an injection are read as the
    files they are; the COPY in their names never runs."""
    monkeypatch.chdir(tmp_path)  # where a relative 'pwned.csv' would land
    evil = "it's'); COPY (SELECT 42 AS a) TO 'pwned.csv'; --"
    (tmp_path / evil).mkdir()
    frame = pl.DataFrame(
        {"confirmationref": ["R1"], "email": ["a@b.co"], "conversiontype": ["p"]}
    ).with_columns(pl.lit(datetime(2026, 10, 20)).alias("event_time"))
    frame.write_parquet(tmp_path / evil / "orders.parquet")
    database = tmp_path / f"{evil}.duckdb"
    with duckdb.connect(str(database)) as con:
        con.register("frame", frame)
        con.execute("CREATE TABLE orders AS SELECT * FROM frame")
    (tmp_path / "query.sql").write_text(QUERY, "utf-8")
    parquet = base_config(tmp_path, source={"parquet": {"orders": f"{evil}/*.parquet"}})
    del parquet["source"]["database"]
    on_duckdb = base_config(tmp_path, source={"database": database.name})
    for data in (parquet, on_duckdb):
        config = load_config(write_config(tmp_path, data))
        read, reasons, batches = outcomes(config)
        assert (read, reasons, len(batches)) == (1, [], 1)
    missing = base_config(tmp_path, source={"parquet": {"orders": f"x{evil}.parquet"}})
    del missing["source"]["database"]
    with pytest.raises(SourceError, match=r"source\.parquet\.orders"):
        outcomes(load_config(write_config(tmp_path, missing)))
    assert not list(tmp_path.glob("pwned*"))


# ------------------------------------------------------------------- no network


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[str]]]:
    """An HTTP proxy on loopback that records the first line of each request made
    through it (DuckDB's downloads honour HTTP_PROXY), and answers none."""
    server = socket.create_server(("127.0.0.1", 0))
    requests: list[str] = []

    def record() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            with connection:
                connection.settimeout(10)
                requests.append(connection.recv(4096).decode(errors="replace").split("\r\n")[0])

    thread = threading.Thread(target=record, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", requests
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    thread.join()


@pytest.mark.e2e
def test_a_query_needing_an_extension_downloads_nothing_and_says_what_to_do(
    tmp_path: Path, proxy: tuple[str, list[str]]
) -> None:
    url, requests = proxy
    frame = pl.DataFrame(
        {
            "confirmationref": ["R1"],
            "email": ["a@b.co"],
            "conversiontype": ["p"],
            "ip": ["10.0.0.1"],
        }
    ).with_columns(pl.lit(datetime(2026, 10, 20)).alias("event_time"))
    config = warehouse(tmp_path, frame)
    (tmp_path / "query.sql").write_text(
        "SELECT * EXCLUDE (ip), CAST(ip AS INET) AS ipaddress FROM orders WHERE $since <= $until",
        "utf-8",
    )
    home = tmp_path / "home"  # where DuckDB keeps the extensions it installs: none yet
    home.mkdir()
    env = {"HOME": str(home)} | {
        name: url for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
    }
    result = cli("sync", "--config", str(config.path), *WINDOW, env=env)
    assert result.returncode == 2, result.stderr
    assert requests == []  # nothing went out: no extension was downloaded
    message = " ".join(result.stderr.split())
    assert (
        'error: query.sql: Catalog Error: Type with name "INET" is not in the catalog, but it '
        "exists in the inet extension. This query needs the DuckDB extension inet, which "
        "rokt-connector does not load (loading one runs code fetched from the internet): "
        "select the address as text, e.g. CAST(ip AS VARCHAR) AS ipaddress"
    ) in message
    assert not list(home.rglob("*extension*"))
