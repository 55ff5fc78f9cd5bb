"""The audiences' current members, keyed without PII, and how they differ from what Rokt
holds: reading `audiences.query` (identities normalized and hashed by `transform`, as
for conversions), the diff against the ledger's delivered membership, and the mass-drop
guard that stops a run before anything is sent."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from connector.audiences.batch import identities_json
from connector.config import Config, UnknownColumns
from connector.digest import sha256
from connector.errors import MassDrop, SourceError
from connector.sources import source_for
from connector.spec import DEVICE_IDENTITIES
from connector.transform import transform
from connector.values import trimmed_text

# The query's columns that identify a member; any other column is not sent (yet).
IDENTITY_COLUMNS = ("email", "email_sha256", "customerid", "rtid", *DEVICE_IDENTITIES)

MEMBERS_SCHEMA = {"audience": pl.String, "member_key": pl.String, "identities": pl.String}


@dataclass
class Members:
    """The query's membership: one row per (audience, member), and what was left out."""

    frame: pl.DataFrame  # MEMBERS_SCHEMA
    rows_read: int = 0
    rows_without_audience: int = 0
    rows_without_identity: int = 0
    duplicates: int = 0
    audiences: list[str] = field(default_factory=list)


def member_keys(frame: pl.DataFrame) -> pl.Expr:
    """The SHA-256 of the normalized email (or the given email hash); else
    `customerid:` + the SHA-256 of the customerid; else null (a transformed frame)."""
    by_customer = pl.concat_str(pl.lit("customerid:"), sha256(pl.col("customerid")))
    return pl.coalesce(pl.col("_identity_sha256"), by_customer)


def _chunk(chunk: pl.DataFrame, config: Config, members: Members) -> pl.DataFrame:
    if "audience_name" not in chunk.columns:
        raise SourceError(
            f"audiences.query: {config.audiences.query}: the result needs an audience_name "
            f"column (it returns {', '.join(chunk.columns[:10])})"
        )
    audience = chunk.select(trimmed_text("audience_name")).to_series()
    identities = chunk.select(c for c in chunk.columns if c in IDENTITY_COLUMNS)
    # the conversions' mapping, an email always hashed, no row refused for its event fields
    mapping = config.mapping.model_copy(
        update={
            "hash": tuple(dict.fromkeys((*config.mapping.hash, "email"))),
            "allow_plain": tuple(c for c in config.mapping.allow_plain if c != "email"),
            "unknown_columns": UnknownColumns.IGNORE,
        }
    )
    out = transform(identities, mapping, config.destination.environment)
    keyed = out.with_columns(
        audience.alias("_audience"),
        member_keys(out).alias("_key"),
        identities_json(out).alias("_identities"),
    )
    members.rows_read += chunk.height
    members.rows_without_audience += audience.null_count()
    keyed = keyed.filter(pl.col("_audience").is_not_null())
    no_identity = pl.col("_key").is_null() | pl.col("_identities").is_null()
    members.rows_without_identity += keyed.filter(no_identity).height
    return keyed.filter(~no_identity).select(
        audience=pl.col("_audience"), member_key=pl.col("_key"), identities=pl.col("_identities")
    )


def read_members(config: Config) -> Members:
    """Every audience's current members, from `audiences.query` (whole, in memory)."""
    assert config.audiences.query is not None
    members = Members(pl.DataFrame(schema=MEMBERS_SCHEMA))
    source = source_for(config.source)
    parts = [_chunk(chunk, config, members) for chunk in source.members(config.audiences.query)]
    frame = pl.concat([members.frame, *parts])
    unique = frame.unique(["audience", "member_key"], keep="first", maintain_order=True)
    members.duplicates = frame.height - unique.height
    members.frame = unique
    members.audiences = sorted(unique["audience"].unique().to_list())
    return members


def diff(current: pl.DataFrame, delivered: pl.DataFrame) -> pl.DataFrame:
    """The changes that make `delivered` (what Rokt holds) into `current` (the query):
    `audience`, `member_key`, `action` (add | drop), `identities` (a drop's from the
    ledger), sorted by member, then audience."""
    keys = ["audience", "member_key"]
    adds = current.join(delivered, on=keys, how="anti").with_columns(action=pl.lit("add"))
    drops = delivered.join(current, on=keys, how="anti").with_columns(action=pl.lit("drop"))
    columns = ["audience", "member_key", "action", "identities"]
    return pl.concat([adds.select(columns), drops.select(columns)]).sort("member_key", "audience")


def check_drops(
    current: pl.DataFrame,
    delivered: pl.DataFrame,
    changes: pl.DataFrame,
    max_fraction: float,
    allow_missing: bool = False,
) -> dict[str, dict[str, int]]:
    """Each audience's delivered members, adds and drops; raises `MassDrop` when one is
    missing from the result (unless `allow_missing`) or would lose more than
    `max_fraction` of its members."""
    held = delivered.group_by("audience").len("delivered")
    moves = changes.group_by("audience").agg(
        drops=(pl.col("action") == "drop").sum(), adds=(pl.col("action") == "add").sum()
    )
    present = current.select("audience").unique().with_columns(present=pl.lit(True))
    table = (
        held.join(moves, on="audience", how="full", coalesce=True)
        .join(present, on="audience", how="left")
        .fill_null(0)
        .with_columns(pl.col("present").cast(pl.Boolean))
        .sort("audience")
    )
    counts = {
        row["audience"]: {k: int(row[k]) for k in ("delivered", "adds", "drops")}
        for row in table.iter_rows(named=True)
    }
    too_many = []
    for row in table.iter_rows(named=True):
        if not row["delivered"]:
            continue
        if not row["present"] and not allow_missing:
            too_many.append(
                f"{row['audience']!r} is missing from the result ({row['delivered']} members "
                "delivered would all be dropped)"
            )
        elif row["present"] and row["drops"] / row["delivered"] > max_fraction:
            too_many.append(
                f"{row['audience']!r} would drop {row['drops']} of its {row['delivered']} "
                f"members ({row['drops'] / row['delivered']:.0%}; max_drop_fraction is "
                f"{max_fraction:.0%})"
            )
    if too_many:
        raise MassDrop(
            "audiences: nothing sent: "
            + "; ".join(too_many)
            + ". If the query is right, rerun with --allow-mass-drop"
        )
    return counts
