"""The audit job: what became of each conversion, read from the ledger only.

Owns: the `ledger` commands' queries (`sql/audit_*.sql`) over a ledger opened
read-only (`ledger.connect_read_only`: exit 4 while a run writes it): one
conversion's history, look-up by identity hash, the summary, export, and the
reconciliation of the source against the ledger. Must not: write the ledger, send
anything, or take raw PII as a search key (look-ups are by confirmationref or by the
SHA-256 of the normalized email).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from connector.digest import sql_file
from connector.errors import ConfigError
from connector.ledger import connect_read_only
from connector.transform import confirmationrefs

_SHA256 = re.compile(r"[0-9a-f]{64}")


def normalize_ref(ref: str) -> str | None:
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
        """The ledger row of `ref` with its `attempts` (oldest first), or None."""
        normalized = normalize_ref(ref)
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
