"""The front half of every job: each chunk of the source checked against the ledger,
transformed, encoded by the transport, deduplicated in source order and packed into
requests (`prepare`), with every row accounted for in a `Prepared`."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from connector.clock import epoch_ms, oldest_event
from connector.config import Config
from connector.dedup import RunDedup
from connector.digest import sha256
from connector.sources import source_for
from connector.status import Status
from connector.transform import META, confirmationrefs, split, transform, warning_counts
from connector.transports import transport_for
from connector.transports.base import Request, Transport

REJECTED_COLUMNS = [*(c for c in META if c != "_message_id"), "_row_sha256"]

ENCODED_COLUMNS = [*META, "_body", "_payload_sha256", "_request_id"]

Lookup = Callable[[pl.Series], pl.DataFrame]  # refs -> what the ledger knows (KNOWN_SCHEMA)

KNOWN_SCHEMA = {
    "ref": pl.String,
    "status": pl.String,
    "payload_sha256": pl.String,
    "payload_prefix": pl.UInt32,
}


@dataclass(frozen=True)
class Prepared:
    """One chunk after the front half: request bodies and the rows set aside."""

    rows_read: int
    duplicates: int
    # the duplicates unlike the row that won (`_row`, `_row_sha256`, `_ref`): a sync
    # fails on them the first time it sees them
    differing: pl.DataFrame
    skipped: int  # already accepted, or rejected with the same payload (ledger)
    encoded: pl.DataFrame  # rows to send (ENCODED_COLUMNS), in the order of `requests`
    requests: Sequence[Request]  # `start:stop` index rows of `encoded`
    rejected: pl.DataFrame  # REJECTED_COLUMNS of the rows rejected locally
    changed: pl.Series  # refs accepted before whose payload now differs (skipped)
    amounts: pl.DataFrame  # `_currency`, `_amount` of every valid row, skipped ones too
    shown: list[str]  # the first valid rows' bodies, plain-text PII redacted (`show`)
    columns: list[str]  # the query's

    @property
    def warnings(self) -> dict[str, int]:
        """Rows to send by the field warning that dropped one of their fields."""
        return warning_counts(self.encoded)


DIFFERING = "duplicate_differs"  # `rejected_rows.reason` of a duplicate unlike the winner

_NONE = pl.DataFrame(schema={"_row": pl.Int64, "_row_sha256": pl.String})


@dataclass(frozen=True)
class _Transformed:
    """One chunk after the parallel half: every row, duplicates too, with what the
    ledger says of it (flags), before the run's dedup takes the repeats out."""

    encoded: pl.DataFrame  # ENCODED_COLUMNS, `_settled`, `_changed`
    rejected: pl.DataFrame  # REJECTED_COLUMNS, `_accepted_before`
    shown: pl.DataFrame  # `_row`, `_body` of the first valid rows, redacted (`show`)


def _oldest_ms(config: Config, now: datetime) -> int:
    """Events before this (UTC epoch ms) are `too_old` for a run at `now`."""
    return epoch_ms(oldest_event(now, config.sync.max_event_age))


def _settled_before(frame: pl.DataFrame, known: pl.DataFrame) -> pl.Series:
    """True where the ledger has the row `accepted`, or `rejected` with the same payload."""
    joined = frame.select("_ref", "_payload_sha256").join(
        known, left_on="_ref", right_on="ref", how="left", maintain_order="left"
    )
    same_payload = pl.col("payload_sha256") == pl.col("_payload_sha256")
    accepted, rejected = pl.col("status") == Status.ACCEPTED, pl.col("status") == Status.REJECTED
    done = accepted | (rejected & same_payload)
    return joined.select(done.fill_null(False)).to_series()


def _changed_after_accept(frame: pl.DataFrame, known: pl.DataFrame) -> pl.Series:
    """True where the ledger has the row `accepted` with another payload (by the first
    32 bits of its SHA-256: a change goes unseen once in 4 billion)."""
    joined = frame.select("_ref", "_payload_sha256").join(
        known, left_on="_ref", right_on="ref", how="left", maintain_order="left"
    )
    prefix = pl.col("_payload_sha256").str.slice(0, 8).str.to_integer(base=16)
    changed = (pl.col("status") == Status.ACCEPTED) & (pl.col("payload_prefix") != prefix)
    return joined.select(changed.fill_null(False)).to_series()


def _fingerprints(chunk: pl.DataFrame, rows: pl.Series, wanted: pl.Series) -> pl.DataFrame:
    """(`_row`, `_row_sha256`) of the rows of `chunk` numbered `wanted`: the SHA-256 of
    the row's column names and values (how a rejection is known again)."""
    mask = rows.is_in(wanted.implode())
    names = "\x1f".join(chunk.columns)
    values = (  # a time as its number: polars cannot render one past the year 9999
        (pl.col(c).to_physical() if dtype.is_temporal() else pl.col(c))
        .cast(pl.String)
        .fill_null("\x00")
        for c, dtype in chunk.schema.items()
    )
    content = pl.concat_str([pl.lit(names), *values], separator="\x1e")
    return chunk.filter(mask).select(
        pl.lit(rows.filter(mask)).alias("_row"), sha256(content).alias("_row_sha256")
    )


def _transform_chunk(
    chunk: pl.DataFrame,
    rows: pl.Series,
    config: Config,
    transport: Transport,
    show: int,
    known: pl.DataFrame,
    oldest_ms: int,
    newest_ms: int,
    refs: pl.Series,
) -> _Transformed:
    """Transform and encode every row of one chunk, and flag what the ledger settled."""
    environment = config.destination.environment
    frame = transform(chunk, config.mapping, environment, rows, oldest_ms, newest_ms, refs)
    valid, rejected = split(frame)
    encoded, too_large = split(transport.encode(valid))
    rejected = pl.concat([rejected, too_large], how="diagonal")
    rejected = rejected.join(
        _fingerprints(chunk, rows, rejected["_row"]), on="_row", how="left"
    ).select(REJECTED_COLUMNS)
    # a row rejected here whose conversion was accepted before stays accepted
    accepted_before = (
        rejected["_ref"]
        .is_in(known.filter(pl.col("status") == Status.ACCEPTED)["ref"].implode())
        .fill_null(False)  # a row without a confirmationref was never accepted
    )
    if show:  # not a row an earlier one of this chunk repeats (dedup drops the rest)
        first = refs.is_first_distinct() | refs.is_null()
        valid = valid.filter(pl.col("_row").is_in(rows.filter(first).implode()))
    shown = transport.encode(valid.head(show), redact=True)
    return _Transformed(
        encoded.select(
            *ENCODED_COLUMNS,
            _settled=_settled_before(encoded, known),
            _changed=_changed_after_accept(encoded, known),
        ),
        rejected.with_columns(_accepted_before=accepted_before),
        split(shown)[0].select("_row", "_body"),
    )


def _content(sha256_hex: str) -> pl.Expr:
    """The first 32 bits of a SHA-256 (hex) column, as what the run's dedup compares."""
    return pl.col(sha256_hex).str.slice(0, 8).str.to_integer(base=16).cast(pl.UInt32)


def _deduplicate(
    part: _Transformed,
    chunk: pl.DataFrame,
    rows: pl.Series,
    refs: pl.Series,
    dedup: RunDedup,
    transport: Transport,
) -> Prepared:
    """Take the run's repeats out of one transformed chunk (in source order: the first
    row with a ref wins), spot those unlike the row that won by their payload (or, for
    a rejected row, its content), and pack the rest."""
    contents = pl.concat(
        [
            part.encoded.select("_row", _content("_payload_sha256").alias("c")),
            part.rejected.select("_row", _content("_row_sha256").alias("c")),
        ]
    ).sort("_row")["c"]
    duplicate, differs = dedup.check(refs, contents)
    encoded, rejected, shown = part.encoded, part.rejected, part.shown
    if duplicate.any():
        at = -rows[0] if rows.len() else 0

        def unique(frame: pl.DataFrame) -> pl.DataFrame:
            return frame.filter(~duplicate.gather(frame["_row"] + at))

        encoded, rejected, shown = unique(encoded), unique(rejected), unique(shown)
    differing = _fingerprints(chunk, rows, rows.filter(differs)) if differs.any() else _NONE
    differing = differing.with_columns(_ref=refs.filter(differs))
    amounts = encoded.select("_currency", "_amount")
    changed = encoded["_ref"].filter(encoded["_changed"])
    skipped = int(encoded["_settled"].sum()) + int(rejected["_accepted_before"].sum())
    encoded = encoded.filter(~pl.col("_settled")).select(ENCODED_COLUMNS)
    rejected = rejected.filter(~pl.col("_accepted_before")).select(REJECTED_COLUMNS)
    requests = transport.pack(encoded["_body"])
    return Prepared(
        rows.len(),
        int(duplicate.sum()),
        differing,
        skipped,
        encoded,
        requests,
        rejected,
        changed,
        amounts,
        shown["_body"].to_list(),
        chunk.columns,
    )


def prepare(
    config: Config,
    since: datetime,
    until: datetime,
    now: datetime,
    limit: int | None = None,
    show: int = 0,
    workers: int = 2,
    lookup: Lookup | None = None,
) -> Generator[Prepared]:
    """Each chunk of `[since, until)`: checked against the ledger (`lookup`),
    transformed, encoded, deduplicated and packed; a run at `now` rejects events older
    than `sync.max_event_age` as `too_old`, and later than now + `sync.max_clock_skew`
    as `future_event_time`. `show`: bodies of each chunk's first valid rows to print.

    Up to `workers` chunks are transformed and encoded at once (polars and DuckDB
    release the GIL); the ledger lookup before, and deduplication after, run on each
    chunk in source order, so the first row with a confirmationref wins and its
    repeats can be compared with it. Chunks come out in order.
    """
    dedup, transport = RunDedup(), transport_for(config.destination)
    nothing_known = pl.DataFrame(schema=KNOWN_SCHEMA)
    Pending = tuple[pl.DataFrame, pl.Series, pl.Series, Future[_Transformed]]
    in_flight: deque[Pending] = deque()

    def next_part() -> Prepared:
        chunk, rows, refs, future = in_flight.popleft()
        return _deduplicate(future.result(), chunk, rows, refs, dedup, transport)

    first_row, oldest_ms = 1, _oldest_ms(config, now)
    newest_ms = epoch_ms(now + config.sync.max_clock_skew)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prepare") as pool:
            for chunk in source_for(config.source).chunks(since, until, limit):
                rows = pl.int_range(first_row, first_row + chunk.height, eager=True)
                first_row += chunk.height
                refs = confirmationrefs(chunk)
                # each ref once: only the answer for a ref's first row is used
                known = lookup(refs.filter(refs.is_first_distinct())) if lookup else nothing_known
                future = pool.submit(
                    _transform_chunk,
                    *(chunk, rows, config, transport, show, known, oldest_ms, newest_ms, refs),
                )
                in_flight.append((chunk, rows, refs, future))
                if len(in_flight) > workers:
                    yield next_part()
            while in_flight:
                yield next_part()
    finally:
        for *_, future in in_flight:
            future.cancel()


def add_examples(seen: list[str], refs: pl.Series, most: int = 5) -> None:
    """Add refs not in `seen` yet to it, until it holds `most`."""
    if len(seen) < most:
        fresh = refs.drop_nulls().unique(maintain_order=True)
        seen += fresh.filter(~fresh.is_in(seen)).head(most - len(seen)).to_list()
