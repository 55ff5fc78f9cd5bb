"""The audiences' current members, keyed without PII, and how they differ from what Rokt
holds: reading `audiences.query` (identities normalized and hashed by `transform`, as
for conversions), the diff against the ledger's delivered membership, and the mass-drop
guard that stops a run before anything is sent."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from connector.audiences.batch import attributes_json, identities_json
from connector.audiences.plan import OPEN
from connector.config import Config
from connector.digest import sha256
from connector.errors import MassDrop, SourceError
from connector.sources import source_for
from connector.spec import BY_COLUMN, MAX_NAME_CHARS, MAX_VALUE_CHARS, PLAIN_PII, Group
from connector.transform import transform
from connector.values import trimmed_text

# A batch carries the query's user attributes beside one flag per audience changed
# (at most AUDIENCES_PER_BATCH): together within the Event API's 100 user attributes.
MAX_QUERY_ATTRIBUTES = 50

MEMBERS_SCHEMA = {
    "audience": pl.String,
    "member_key": pl.String,
    "identities": pl.String,
    "attributes": pl.String,
}


@dataclass
class Members:
    """The query's membership: one row per (audience, member), and what was left out."""

    frame: pl.DataFrame  # MEMBERS_SCHEMA
    rows_read: int = 0
    rows_without_audience: int = 0
    rows_without_identity: int = 0
    rows_too_long: int = 0
    duplicates: int = 0
    audiences: list[str] = field(default_factory=list)


def member_keys(frame: pl.DataFrame) -> pl.Expr:
    """The SHA-256 of the normalized email (or the given email hash); else
    `customerid:` + the SHA-256 of the customerid; else null (a transformed frame)."""
    by_customer = pl.concat_str(pl.lit("customerid:"), sha256(pl.col("customerid")))
    return pl.coalesce(pl.col("_identity_sha256"), by_customer)


def _checked_columns(chunk: pl.DataFrame, config: Config) -> list[str]:
    """The query's columns other than `audience_name`; refuses conversion fields and
    more user attributes than a batch can carry beside its flags."""
    query = config.audiences.query
    if "audience_name" not in chunk.columns:
        raise SourceError(
            f"audiences.query: {query}: the result needs an audience_name "
            f"column (it returns {', '.join(chunk.columns[:10])})"
        )
    columns = [c for c in chunk.columns if c != "audience_name"]
    groups = {c: BY_COLUMN[c].group if c in BY_COLUMN else Group.USER for c in columns}
    event = [c for c in columns if groups[c] in (Group.EVENT, None)]
    if event:
        raise SourceError(
            f"audiences.query: {query}: {', '.join(event)} belong to a conversion, not to "
            "an audience member; leave them out of the audience query"
        )
    prefix = config.audiences.attribute_prefix
    clash = [c for c in columns if prefix and c.startswith(prefix)]
    attributes = [c for c in columns if groups[c] == Group.USER]
    if clash or len(attributes) > MAX_QUERY_ATTRIBUTES:
        raise SourceError(
            f"audiences.query: {query}: "
            + (
                f"{', '.join(clash)} start with audiences.attribute_prefix ({prefix!r}), "
                "the audiences' own flags"
                if clash
                else f"{len(attributes)} user attribute columns; an audience batch carries at "
                f"most {MAX_QUERY_ATTRIBUTES} beside its audience flags"
            )
        )
    return columns


def _check_names(audience: pl.Series, prefix: str) -> None:
    """Refuses an audience whose flag (`prefix` + name) is longer than a name may be."""
    long = audience.filter(audience.str.len_chars() + len(prefix) > MAX_NAME_CHARS)
    if long.len():
        name = long[0]
        raise SourceError(
            f"audiences.query: the audience {name[:40]!r}... is {len(name)} characters; its "
            f"user attribute {prefix}<name> may be at most {MAX_NAME_CHARS}"
        )


def _chunk(chunk: pl.DataFrame, config: Config, members: Members) -> pl.DataFrame:
    columns = _checked_columns(chunk, config)
    audience = chunk.select(trimmed_text("audience_name")).to_series()
    _check_names(audience.drop_nulls().unique(), config.audiences.attribute_prefix)
    # the conversions' mapping, but every PII column hashed (the ledger keeps these
    # values) and no row refused for its (absent) event fields
    mapping = config.mapping.model_copy(
        update={
            "hash": tuple(dict.fromkeys((*config.mapping.hash, *PLAIN_PII))),
            "allow_plain": tuple(c for c in config.mapping.allow_plain if c not in PLAIN_PII),
        }
    )
    out = transform(chunk.select(columns), mapping, config.destination.environment)
    texts = [c for c, t in out.schema.items() if t == pl.String and not c.startswith("_")]
    too_long = pl.any_horizontal(
        pl.lit(False),
        *((pl.col(c).str.len_chars() > MAX_VALUE_CHARS).fill_null(False) for c in texts),
    )
    keyed = out.with_columns(
        audience.alias("_audience"),
        member_keys(out).alias("_key"),
        identities_json(out).alias("_identities"),
        attributes_json(out).alias("_attributes"),
        too_long.alias("_too_long"),
    )
    members.rows_read += chunk.height
    members.rows_without_audience += audience.null_count()
    keyed = keyed.filter(pl.col("_audience").is_not_null())
    no_identity = pl.col("_key").is_null() | pl.col("_identities").is_null()
    members.rows_without_identity += keyed.filter(no_identity).height
    keyed = keyed.filter(~no_identity)
    members.rows_too_long += keyed.filter("_too_long").height
    return keyed.filter(~pl.col("_too_long")).select(
        audience=pl.col("_audience"),
        member_key=pl.col("_key"),
        identities=pl.col("_identities"),
        attributes=pl.col("_attributes"),
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


def held(delivered: pl.DataFrame, last: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(surely, maybe): the members Rokt surely holds, and those it may hold, out of the
    `delivered` ones and each member's `last` change. An open change (pending: sent, no
    answer heard; failed) may have reached Rokt: an open drop makes a member unsure, an
    open add makes one possible."""
    keys = ["audience", "member_key"]
    unsure = last.filter(pl.col("last_status").is_in(OPEN))
    dropping = unsure.filter(pl.col("last_action") == "drop").select(keys)
    adding = unsure.filter(pl.col("last_action") == "add")
    adding = adding.select(*keys, identities=pl.col("last_identities"))
    surely = delivered.join(dropping, on=keys, how="anti")
    maybe = pl.concat([delivered, adding.join(delivered, on=keys, how="anti")])
    return surely, maybe


def diff(current: pl.DataFrame, surely: pl.DataFrame, maybe: pl.DataFrame) -> pl.DataFrame:
    """The changes that make what Rokt holds (`held`) into `current` (the query):
    `audience`, `member_key`, `action` (add | drop), `identities` (a drop's from the
    ledger), `attributes` (an add's), sorted by member, then audience. A member Rokt
    may hold is dropped, one it may not hold is added."""
    keys = ["audience", "member_key"]
    adds = current.join(surely, on=keys, how="anti").with_columns(action=pl.lit("add"))
    drops = maybe.join(current, on=keys, how="anti").with_columns(
        action=pl.lit("drop"), attributes=pl.lit(None, pl.String)
    )
    columns = ["audience", "member_key", "action", "identities", "attributes"]
    return pl.concat([adds.select(columns), drops.select(columns)]).sort("member_key", "audience")


def check_drops(
    current: pl.DataFrame,
    maybe: pl.DataFrame,
    changes: pl.DataFrame,
    max_fraction: float,
    allow_missing: bool = False,
) -> dict[str, dict[str, int]]:
    """Each audience's members Rokt may hold (`maybe`, of `held`: "delivered"), adds and
    drops; raises `MassDrop` when one is missing from the result (unless
    `allow_missing`) or would lose more than `max_fraction` of its members."""
    held = maybe.group_by("audience").len("delivered")
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
