"""Which changes a run sends: the diff's changes numbered and named (`source_message_id`,
UUIDv5 of environment, audience, member and the change's number), an undelivered change
of an earlier run resent as it was (id, time, identities, attributes, batch), and those
no longer wanted closed as `superseded`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import polars as pl

from connector.digest import uuid5

NS_CHANGE = uuid.uuid5(uuid.NAMESPACE_URL, "https://rokt-connector.invalid/audience_change")
OPEN = ("pending", "failed")  # a change not delivered yet: resent while still wanted

CHANGE_COLUMNS = [
    *("change_id", "audience", "member_key", "action", "seq", "identities", "attributes"),
    "event_ms",
]


@dataclass(frozen=True)
class Plan:
    changes: pl.DataFrame  # CHANGE_COLUMNS, `resent`, `sent_in` (a resent one's request id)
    superseded: pl.Series  # change ids of open changes no longer wanted
    rejected_known: int  # changes the platform rejected before, unchanged: not resent


def plan(changes: pl.DataFrame, last: pl.DataFrame, environment: str, now_ms: int) -> Plan:
    """The changes to send, out of the diff's `changes` and the `last` change in the
    ledger of each of their members (sql/audience_last_changes.sql; every member whose
    last change is undelivered has a change in the diff, `members.held`)."""
    joined = changes.join(last, on=["audience", "member_key"], how="left", maintain_order="left")
    same = (pl.col("last_action") == pl.col("action")).fill_null(False)
    resend = same & pl.col("last_status").is_in(OPEN).fill_null(False)
    known = same & (pl.col("last_status") == "rejected").fill_null(False)
    rejected_known = joined.filter(known).height
    joined = joined.filter(~known).with_columns(resent=resend)
    seq = pl.col("last_seq").fill_null(0) + pl.when(pl.col("resent")).then(0).otherwise(1)
    joined = joined.with_columns(seq.cast(pl.Int32).alias("seq"))
    names = joined.select(
        pl.concat_str(["audience", "member_key", pl.col("seq").cast(pl.String)], separator="\x1f")
    ).to_series()
    fresh = uuid5(names, NS_CHANGE, f"{environment}:")
    planned = joined.with_columns(fresh.alias("_fresh")).select(
        pl.when(pl.col("resent"))
        .then(pl.col("last_change_id"))
        .otherwise(pl.col("_fresh"))
        .alias("change_id"),
        "audience",
        "member_key",
        "action",
        "seq",
        pl.when(pl.col("resent"))
        .then(pl.col("last_identities"))
        .otherwise(pl.col("identities"))
        .alias("identities"),
        pl.when(pl.col("resent"))
        .then(pl.col("last_attributes"))
        .otherwise(pl.col("attributes"))
        .alias("attributes"),
        pl.when(pl.col("resent"))
        .then(pl.col("last_event_ms"))
        .otherwise(pl.lit(now_ms, pl.Int64))
        .cast(pl.Int64)
        .alias("event_ms"),
        "resent",
        pl.when(pl.col("resent")).then(pl.col("last_request_id")).alias("sent_in"),
    )
    still = planned.filter("resent")["change_id"]
    superseded = last.filter(
        pl.col("last_status").is_in(OPEN) & ~pl.col("last_change_id").is_in(still.implode())
    )["last_change_id"]
    return Plan(planned, superseded, rejected_known)
