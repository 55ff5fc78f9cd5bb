"""The results ledger: what became of every conversion, one DuckDB file per project,
holding hashes (`identity_sha256`) and never raw PII. These are its public names; the
audit's read-only queries are `connector.ledger.audit`.
"""

from __future__ import annotations

from connector.ledger.audiences import Audiences
from connector.ledger.rows import Rows
from connector.ledger.runs import Runs, finished_windows
from connector.ledger.store import LedgerLocked, connect_read_only


class Ledger(Rows, Runs, Audiences):
    """The ledger of one environment, open (and locked) for the length of a run: the
    file (`store`), the conversions' rows (`rows`) and the runs (`runs`)."""


__all__ = [
    "Ledger",
    "LedgerLocked",
    "connect_read_only",
    "finished_windows",
]
