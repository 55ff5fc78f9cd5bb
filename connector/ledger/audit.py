"""The audit: what became of each conversion, read from a ledger opened read-only (the
`ledger` commands' queries, `sql/audit_*.sql`). It writes and sends nothing, and finds
conversions by confirmationref or email hash, never by raw PII.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from connector import clock, files
from connector.config import SourceConfig
from connector.digest import sql_file
from connector.errors import ConfigError
from connector.ledger.store import connect_read_only
from connector.sources import source_for
from connector.status import Status
from connector.transform import confirmationrefs

_SHA256 = re.compile(r"[0-9a-f]{64}")
STATUSES = tuple(status.value for status in Status)
# Source conversions in these states are not known to have reached the platform.
UNDELIVERED = ("missing", Status.PENDING.value, Status.FAILED.value)
EXPORT_FORMATS = {".csv": "csv", ".parquet": "parquet"}
REPORT_SUFFIXES = (".html", ".htm")


def _normalize_ref(ref: str) -> str | None:
    """The confirmationref as the pipeline records it (trimmed; blank is none)."""
    value = confirmationrefs(pl.DataFrame({"confirmationref": [ref]}))[0]
    return None if value is None else str(value)


class Audit:
    """Read-only queries over one environment's ledger."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, environment: str) -> None:
        self._con = con
        self.path = path
        self.environment = environment

    @classmethod
    def open(cls, path: Path, environment: str) -> Audit:
        return cls(connect_read_only(path, environment), path, environment)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Audit:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _rows(self, name: str, **params: Any) -> list[dict[str, Any]]:
        relation = self._con.sql(sql_file(name), params={"environment": self.environment, **params})
        rows: list[dict[str, Any]] = relation.pl().to_dicts()
        return rows

    def conversion(self, ref: str) -> dict[str, Any] | None:
        """The ledger row of `ref` with its `history` of attempts (oldest first), or None."""
        normalized = _normalize_ref(ref)
        if normalized is None:
            return None
        found = self._rows("audit_show.sql", ref=normalized)
        if not found:
            return None
        return found[0] | {"history": self._rows("audit_history.sql", ref=normalized)}

    def identity(self, sha256: str) -> list[dict[str, Any]]:
        """The conversions whose normalized email hashes to `sha256` (64 hex digits)."""
        value = sha256.strip().lower()
        if not _SHA256.fullmatch(value):
            raise ConfigError(
                "--identity: expected the SHA-256 (64 hex digits) of the trimmed, "
                "lower-cased email; never the email itself"
            )
        return self._rows("audit_identity.sql", identity=value)

    def summary(self, now: datetime, days: int = 14, runs: int = 10) -> dict[str, Any]:
        """Conversions by status, by reason (those not accepted), by field warning
        (those sent without a field), by event day (the latest `days` up to the day of
        `now`), and the latest `runs` runs."""
        by_status = self._rows("audit_by_status.sql")
        recent = self._rows("audit_runs.sql", runs=runs)
        return {
            "ledger": str(self.path),
            "environment": self.environment,
            "conversions": sum(row["conversions"] for row in by_status),
            "by_status": by_status,
            "by_reason": self._rows("audit_by_reason.sql"),
            "by_warning": self._rows("audit_by_warning.sql"),
            "by_day": self._rows("audit_by_day.sql", days=days, now=now),
            "runs_total": recent[0]["runs_total"] if recent else 0,
            "runs": [{k: v for k, v in run.items() if k != "runs_total"} for run in recent],
        }

    def export(
        self,
        out: Path,
        statuses: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """Write the ledger rows (of `statuses`, with event times in [since, until)) to
        `out`, CSV or Parquet by its suffix, owner-only, in place at once (never
        through a link, never into a directory: `connector.files`); return how many."""
        file_format = EXPORT_FORMATS.get(out.suffix.lower())
        if file_format is None:
            raise ConfigError(f"--out: {out.name} must end in .csv or .parquet")
        unknown = sorted(set(statuses) - set(STATUSES))
        if unknown:
            raise ConfigError(f"--status: {unknown[0]!r} is not one of {', '.join(STATUSES)}")
        params = {"statuses": list(statuses), "since": since, "until": until}
        fix = "name the file itself, not a link to it"
        with (
            self._con.cursor() as con,
            files.written_by_another(out, "--out", fix) as written,
        ):
            rows = con.sql(
                sql_file("audit_export.sql"), params={"environment": self.environment, **params}
            )
            con.register("export_rows", rows)
            try:
                copied = con.execute(
                    sql_file(f"audit_export_{file_format}.sql"), {"path": str(written)}
                ).fetchall()
            except duckdb.Error as exc:
                raise ConfigError(f"--out: cannot write {out}: {exc}") from None
        return int(copied[0][0])

    def report(
        self,
        out: Path,
        since: datetime | None = None,
        until: datetime | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Write the audit as one self-contained HTML page to `out` (FILE.html): its
        numbers, charts and tables for conversions with an event time in [since, until)
        and runs started then; owner-only, in place at once, never through a link.
        Return what it holds: `out`, `bytes`, `conversions`, `by_status`, `runs`."""
        from connector._version import __version__
        from connector.ledger.report_data import gather
        from connector.ledger.report_page import page

        if out.suffix.lower() not in REPORT_SUFFIXES:
            raise ConfigError(f"--out: {out.name} must end in .html")
        files.check_target(out, "--out", "name the file itself, not a link to it")
        with self._con.cursor() as con:
            data = gather(con, self.path.name, self.environment, since, until, now or clock.now())
        html = page(data, __version__)
        with files.replacing(out, "--out") as written:
            written.write(html)
        return {
            "out": str(out),
            "bytes": len(html.encode()),
            "conversions": data.conversions,
            "by_status": data.by_status,
            "runs": data.runs_total,
        }

    def reconcile(
        self, config: SourceConfig, since: datetime, until: datetime, examples: int = 10
    ) -> dict[str, Any]:
        """The source's conversions of `[since, until)` against the ledger: how many
        are accepted, rejected, rejected_local, pending, failed or missing, with the
        first `examples` of each; and the ledger's conversions of the window that the
        source no longer returns."""
        source_rows = without_ref = 0
        with self._con.cursor() as con:
            con.execute(sql_file("audit_source_refs.sql"))
            for chunk in source_for(config).chunks(since, until):
                refs = confirmationrefs(chunk)
                source_rows += refs.len()
                without_ref += refs.null_count()
                con.register("chunk_refs", pl.DataFrame({"ref": refs}))
                con.execute(sql_file("audit_source_insert.sql"))
                con.unregister("chunk_refs")
            params = {"environment": self.environment, "examples": examples}
            found = con.sql(sql_file("audit_reconcile.sql"), params=params).pl().to_dicts()
            window = params | {"since": since, "until": until}
            ((ledger_only, ledger_only_examples),) = con.sql(
                sql_file("audit_ledger_only.sql"), params=window
            ).fetchall()
        by_state = {state: 0 for state in (*STATUSES, "missing")}
        by_state |= {row["state"]: row["conversions"] for row in found}
        return {
            "since": since,
            "until": until,
            "ledger": str(self.path),
            "environment": self.environment,
            "source_rows": source_rows,
            "rows_without_confirmationref": without_ref,
            "duplicate_rows": source_rows - without_ref - sum(by_state.values()),
            "conversions": sum(by_state.values()),
            "by_state": by_state,
            "examples": {
                row["state"]: row["examples"] for row in found if row["state"] != Status.ACCEPTED
            },
            "ledger_only": ledger_only,
            "ledger_only_examples": ledger_only_examples or [],
            "undelivered": sum(by_state[state] for state in UNDELIVERED),
        }
