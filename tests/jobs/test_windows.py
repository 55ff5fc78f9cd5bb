"""Backfill windows: how a range splits, and when earlier windows cover a new one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.jobs.windows import covered, split


def day(n: int, hour: int = 0) -> datetime:
    return datetime(2026, 10, n, hour, tzinfo=UTC)


def test_a_range_splits_into_windows_the_last_one_shorter() -> None:
    assert split(day(1), day(3, 12), timedelta(days=1)) == [
        (day(1), day(2)),
        (day(2), day(3)),
        (day(3), day(3, 12)),
    ]
    assert split(day(1), day(2), timedelta(days=7)) == [(day(1), day(2))]


def test_a_window_is_covered_only_by_finished_windows_without_a_gap() -> None:
    daily = [(day(n), day(n + 1)) for n in (1, 2, 3, 5)]
    assert covered((day(1), day(4)), daily)  # by three adjacent days
    assert covered((day(2, 6), day(3, 18)), daily)  # inside two
    assert not covered((day(3), day(6)), daily)  # day 4 is missing
    assert not covered((day(5), day(6, 1)), daily)  # one hour past the last
    assert covered((day(1), day(8)), [(day(1), day(8))])
    assert not covered((day(1), day(2)), [])
