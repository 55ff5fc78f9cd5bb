"""The in-memory index of the ledger's refs (`connector.ledger.index`): it answers each
look-up as the ledger file does, refs whose first hash another ref shares included."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from connector import digest
from connector.digest import sql_file
from connector.ledger import Ledger
from connector.ledger.index import RefIndex


def test_the_in_memory_index_answers_each_lookup_as_the_ledger_file_does(
    tmp_path: Path,
) -> None:
    rng = random.Random(5)
    statuses = ["accepted", "pending", "failed", "rejected", "rejected_local"]
    rows = pl.DataFrame(
        {
            "ref": [f"R-{i:05d}" for i in range(4000)],
            "status": [rng.choice(statuses) for _ in range(4000)],
            "payload_sha256": [f"{rng.getrandbits(256):064x}" for _ in range(4000)],
        }
    )
    path = tmp_path / "ledger.duckdb"
    with Ledger.open(path, "development") as ledger:
        ledger.record(rows, "run-1", "events_api")
        answers = []
        for _ in range(6):  # the first lookups scan the file, the later ones the index
            refs = [f"R-{rng.randrange(5000):05d}" for _ in range(700)] + [None, " "]
            unique = pl.Series(refs).unique(maintain_order=True)  # as RunDedup leaves them
            answers.append((unique, ledger.lookup(unique)))
        assert ledger.indexed
    for refs, known in answers:
        accepted = pl.col("status") == "accepted"
        expected = (
            rows.filter(pl.col("ref").is_in(refs.implode()))
            .with_columns(
                pl.when(pl.col("status") == "rejected").then(pl.col("payload_sha256")),
                pl.when(accepted)
                .then(pl.col("payload_sha256").str.slice(0, 8).str.to_integer(base=16))
                .cast(pl.UInt32)
                .alias("payload_prefix"),
            )
            .sort("ref")
        )
        assert_frame_equal(known.sort("ref"), expected)


def test_the_index_finds_refs_whose_first_hash_another_ref_shares() -> None:
    con = digest.connect()
    con.register("chunk_refs", pl.DataFrame({"ref": ["A", "B", "C"]}))
    real = con.sql(sql_file("ledger_fingerprints.sql")).pl()
    k1, k2 = (
        dict(zip(real["ref"], real["k1"], strict=True)),
        dict(zip(real["ref"], real["k2"], strict=True)),
    )
    twin = {"A": k2["A"] ^ 1, "B": k2["B"] ^ 1}  # other refs sharing A's and B's k1
    known = pl.DataFrame(
        {
            "k1": [k1["A"], k1["A"], k1["B"], k1["B"]],
            "k2": [twin["A"], k2["A"], k2["B"], twin["B"]],
            "status": ["pending", "accepted", "rejected", "failed"],
            "payload_prefix": [None, 7, None, None],
        },
        schema_overrides={
            "k1": pl.UInt64,
            "k2": pl.UInt64,
            "status": pl.Categorical,
            "payload_prefix": pl.UInt32,
        },
    ).sort("k1")
    rejected = pl.DataFrame(
        {"k1": [k1["B"]], "k2": [k2["B"]], "payload_sha256": ["p"]},
        schema_overrides={"k1": pl.UInt64, "k2": pl.UInt64},
    )
    found = RefIndex(known, rejected).lookup(con.cursor(), pl.Series(["A", "B", "C"]))
    assert sorted(found.iter_rows()) == [("A", "accepted", None, 7), ("B", "rejected", "p", None)]
