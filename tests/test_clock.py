"""The run's clock and window bounds: UTC everywhere, naive means UTC, the clock is
pinned by ROKT_CONNECTOR_NOW (the tests pin it to the example's anchor)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from connector import clock


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01 01:30", datetime(2026, 11, 1, 1, 30, tzinfo=UTC)),  # naive = UTC
        ("2026-11-01T01:30:00Z", datetime(2026, 11, 1, 1, 30, tzinfo=UTC)),
        ("2026-11-01T01:30:00-04:00", datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),  # EDT
        ("2026-11-01T01:30:00-05:00", datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),  # EST
        (date(2026, 3, 29), datetime(2026, 3, 29, tzinfo=UTC)),
        (datetime(2026, 3, 29, 1, 30), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        (
            datetime(2026, 10, 25, 1, 30, fold=0, tzinfo=ZoneInfo("Europe/London")),  # BST
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        ),
        (
            datetime(2026, 10, 25, 1, 30, fold=1, tzinfo=ZoneInfo("Europe/London")),  # GMT
            datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        ),
        (
            datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=14))),
            datetime(2025, 12, 31, 10, tzinfo=UTC),
        ),
    ],
)
def test_utc_converts_every_form_once(given: datetime | date | str, expected: datetime) -> None:
    result = clock.utc(given)
    assert result == expected and result.tzinfo is UTC


def test_utc_names_the_option_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="--since: expected an ISO date"):
        clock.utc("last tuesday", "--since")


def test_now_is_pinned_by_the_environment_else_the_system_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(clock.NOW_VARIABLE, "2026-11-01T01:30:00-05:00")
    assert clock.now() == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    monkeypatch.delenv(clock.NOW_VARIABLE)
    before = datetime.now(UTC)
    assert before <= clock.now() <= datetime.now(UTC)


def test_the_cutoff_is_to_the_millisecond() -> None:
    now = datetime(2026, 11, 1, 0, 0, 0, 123456, tzinfo=UTC)
    cutoff = clock.oldest_event(now, timedelta(days=30))
    assert cutoff == datetime(2026, 10, 2, 0, 0, 0, 123000, tzinfo=UTC)
    assert clock.epoch_ms(cutoff) == int(datetime(2026, 10, 2, tzinfo=UTC).timestamp()) * 1000 + 123
