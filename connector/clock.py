"""The run's clock: what "now" is, and window bounds as UTC instants.

Owns: `now()`, the time a run takes as its present (the system clock, or
`ROKT_CONNECTOR_NOW` when set: rehearsals and tests against data anchored at a fixed
date), `utc()`, the one conversion of a window bound (an aware or naive datetime, a
date, or ISO 8601 text; naive means UTC) to an aware UTC datetime, and
`oldest_event()`, the cutoff of `sync.max_event_age`. Event times themselves are
converted by `transform`. Must not: sleep, or read anything else from the environment.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

NOW_VARIABLE = "ROKT_CONNECTOR_NOW"


def utc(value: datetime | date | str, what: str = "time") -> datetime:
    """`value` as an aware UTC datetime; a naive value (or a date) is UTC.

    Raises ValueError naming `what` when text is not an ISO 8601 date or timestamp.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{what}: expected an ISO date or timestamp like 2026-11-01 or "
                f"2026-11-01T12:00Z, got {value!r}"
            ) from None
    if not isinstance(value, datetime):  # a date: its midnight, UTC
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def now() -> datetime:
    """The present, in UTC: the system clock unless `ROKT_CONNECTOR_NOW` says otherwise."""
    pinned = os.environ.get(NOW_VARIABLE, "").strip()
    return utc(pinned, NOW_VARIABLE) if pinned else datetime.now(UTC)


def oldest_event(now: datetime, max_event_age: timedelta) -> datetime:
    """The earliest event time a run at `now` sends, to the millisecond (events are
    sent with millisecond times)."""
    cutoff = now - max_event_age
    return cutoff.replace(microsecond=cutoff.microsecond // 1000 * 1000)


def iso(moment: datetime) -> str:
    """`moment` in ISO 8601, UTC written `Z` (how reports and logs show a time)."""
    return moment.isoformat().replace("+00:00", "Z")


def epoch_ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
