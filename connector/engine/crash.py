"""Test-only crash points of a sync: `ROKT_CONNECTOR_CRASH_AT=<point>:<n>` makes the
process SIGKILL itself the n-th time a sync reaches <point> (the crash tests)."""

from __future__ import annotations

import os
import signal
from collections import Counter

# For tests only: `<point>:<n>` makes the process SIGKILL itself the n-th time a sync
# reaches <point>, so crash tests hit each point exactly (see `crash_point`).
CRASH_AT_ENV = "ROKT_CONNECTOR_CRASH_AT"

_crashes_reached: Counter[str] = Counter()


def crash_point(point: str) -> None:
    """A place a crash test can kill the run (`CRASH_AT_ENV`); nothing happens otherwise.

    `read`: a chunk is read and prepared, nothing of it recorded, the query still open;
    `recorded`: a chunk's rows are written `pending`, none of its requests has left;
    `settle`: answers have come back, their final states not yet in the ledger.
    """
    spec = os.environ.get(CRASH_AT_ENV)
    if not spec:
        return
    wanted, _, nth = spec.partition(":")
    if point == wanted:
        _crashes_reached[point] += 1
        if _crashes_reached[point] == (int(nth) if nth.isdigit() else 1):
            os.kill(os.getpid(), signal.SIGKILL)
