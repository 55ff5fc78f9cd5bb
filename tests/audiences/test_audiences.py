"""The audience diff, the change plan and the batch JSON (golden), without a sandbox."""

from __future__ import annotations

import json

import polars as pl
import pytest

from connector.audiences import run
from connector.audiences.batch import AUDIENCES_PER_BATCH, encode
from connector.audiences.members import check_drops, diff, held
from connector.audiences.plan import plan
from connector.errors import MassDrop

IDS = '"user_identities":{"other":"%s"}'


def members(*rows: tuple[str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "audience": [a for a, _ in rows],
            "member_key": [k for _, k in rows],
            "identities": [IDS % k for _, k in rows],
            "attributes": [None for _ in rows],
        },
        schema=dict.fromkeys(("audience", "member_key", "identities", "attributes"), pl.String),
    )


def delivered(*rows: tuple[str, str]) -> pl.DataFrame:
    return members(*rows).drop("attributes")


def diff_with(current: pl.DataFrame, held: pl.DataFrame) -> pl.DataFrame:
    """The diff when Rokt surely holds `held` (no change open)."""
    return diff(current, held, held)


NO_LAST = pl.DataFrame(
    schema={
        "audience": pl.String,
        "member_key": pl.String,
        "last_change_id": pl.String,
        "last_action": pl.String,
        "last_seq": pl.Int32,
        "last_status": pl.String,
        "last_identities": pl.String,
        "last_attributes": pl.String,
        "last_request_id": pl.String,
        "last_event_ms": pl.Int64,
    }
)


def test_the_diff_adds_the_new_drops_the_departed_and_leaves_the_rest() -> None:
    current = members(("vip", "a"), ("vip", "b"), ("lapsed", "a"))
    changes = diff_with(current, delivered(("vip", "b"), ("vip", "c")))
    assert changes.select("audience", "member_key", "action").rows() == [
        ("lapsed", "a", "add"),
        ("vip", "a", "add"),
        ("vip", "c", "drop"),
    ]
    assert diff_with(current, current.drop("attributes")).is_empty()


def test_the_guard_names_the_audience_and_the_numbers() -> None:
    held = delivered(*(("vip", str(i)) for i in range(10)), ("gone", "x"))
    current = members(*(("vip", str(i)) for i in range(4)))
    changes = diff_with(current, held)
    with pytest.raises(MassDrop) as refused:
        check_drops(current, held, changes, 0.5)
    message = str(refused.value)
    assert "'vip' would drop 6 of its 10 members (60%" in message
    assert "'gone' is missing from the result (1 members" in message
    counts = check_drops(current, held, changes, 1.0, allow_missing=True)
    assert counts["vip"] == {"delivered": 10, "adds": 0, "drops": 6}
    assert check_drops(current, held, changes, 0.6, allow_missing=True)


def test_each_change_has_its_own_id_and_an_undelivered_one_keeps_its_id() -> None:
    changes = diff_with(members(("vip", "a")), delivered())
    first = plan(changes, NO_LAST, "development", 1000).changes
    [add] = first.to_dicts()
    assert (add["seq"], add["event_ms"], add["resent"]) == (1, 1000, False)
    # the add was left pending: the rerun resends it as it was
    last = pl.DataFrame(
        {
            "audience": ["vip"],
            "member_key": ["a"],
            "last_change_id": [add["change_id"]],
            "last_action": ["add"],
            "last_seq": [1],
            "last_status": ["pending"],
            "last_identities": [add["identities"]],
            "last_attributes": [None],
            "last_request_id": ["request-1"],
            "last_event_ms": [1000],
        },
        schema=NO_LAST.schema,
    )
    again = plan(changes, last, "development", 2000)
    assert again.changes.select("change_id", "event_ms", "resent", "sent_in").rows() == [
        (add["change_id"], 1000, True, "request-1")
    ]
    # accepted, then the member leaves: the drop is change 2, with a new id
    accepted = last.with_columns(last_status=pl.lit("accepted"))
    drop = plan(diff_with(members(), delivered(("vip", "a"))), accepted, "development", 3000)
    [dropped] = drop.changes.to_dicts()
    assert dropped["seq"] == 2 and dropped["change_id"] != add["change_id"]
    # a pending add may have reached Rokt: when the member leaves, it is dropped (change
    # 2, counted by the guard) and the add closed as superseded
    surely, maybe = held(delivered(), last)
    assert maybe.rows() == [("vip", "a", add["identities"])] and surely.is_empty()
    gone = plan(diff(members(), surely, maybe), last, "development", 3000)
    [undo] = gone.changes.to_dicts()
    assert (undo["action"], undo["seq"], undo["identities"]) == ("drop", 2, add["identities"])
    assert gone.superseded.to_list() == [add["change_id"]]
    with pytest.raises(MassDrop, match="'vip' is missing from the result"):
        check_drops(members(), maybe, diff(members(), surely, maybe), 0.5)
    # a pending drop may have reached Rokt: a member back in the query is added again
    dropping = accepted.with_columns(
        last_change_id=pl.lit(dropped["change_id"]),
        last_action=pl.lit("drop"),
        last_seq=pl.lit(2, pl.Int32),
        last_status=pl.lit("pending"),
    )
    surely, maybe = held(delivered(("vip", "a")), dropping)
    back = plan(diff(members(("vip", "a")), surely, maybe), dropping, "development", 4000)
    assert back.changes.select("action", "seq", "resent").rows() == [("add", 3, False)]
    assert back.superseded.to_list() == [dropped["change_id"]]
    # in another environment the same change has another id
    other = plan(changes, NO_LAST, "production", 1000).changes["change_id"][0]
    assert other != add["change_id"]


GOLDEN = (
    '{"source_request_id":"%s","environment":"development",'
    '"user_identities":{"other":"a"},"user_attributes":{"seg_lapsed":false,"seg_vip":true},'
    '"events":[{"event_type":"custom_event","data":{"event_name":"audiencemembershipupdate",'
    '"custom_event_type":"other","source_message_id":"00000000-0000-5000-8000-000000000002",'
    '"timestamp_unixtime_ms":1764547200000,"custom_attributes":{"audience_name":"lapsed",'
    '"status":"drop"}}},{"event_type":"custom_event","data":{"event_name":'
    '"audiencemembershipupdate","custom_event_type":"other","source_message_id":'
    '"00000000-0000-5000-8000-000000000001","timestamp_unixtime_ms":1764547200000,'
    '"custom_attributes":{"audience_name":"vip","status":"add"}}}]}'
)


def test_one_batch_per_member_with_an_event_and_a_flag_per_change() -> None:
    changes = pl.DataFrame(
        {
            "change_id": [
                "00000000-0000-5000-8000-000000000001",
                "00000000-0000-5000-8000-000000000002",
                "00000000-0000-5000-8000-000000000003",
            ],
            "audience": ["vip", "lapsed", 'say "hi"'],
            "member_key": ["a", "a", "b"],
            "action": ["add", "drop", "add"],
            "identities": [IDS % "a", IDS % "a", IDS % "b"],
            "attributes": [None, None, None],
            "event_ms": [1764547200000] * 3,
            "sent_in": [None, None, None],
        }
    )
    batches = encode(changes, "development", "seg_")
    assert batches["member_key"].to_list() == ["a", "b"]
    first, second = batches.to_dicts()
    assert first["_body"] == GOLDEN % first["_request_id"]
    assert first["change_ids"] == [
        "00000000-0000-5000-8000-000000000002",
        "00000000-0000-5000-8000-000000000001",
    ]
    quoted = json.loads(second["_body"])  # an audience name is JSON-escaped
    assert quoted["user_attributes"] == {'seg_say "hi"': True}
    assert quoted["events"][0]["data"]["custom_attributes"]["audience_name"] == 'say "hi"'
    # the request id is the content's: the same changes give the same batch
    assert encode(changes, "development", "seg_")["_request_id"].to_list() == (
        batches["_request_id"].to_list()
    )


def test_a_members_attributes_ride_with_its_flags_and_many_changes_split() -> None:
    count = 2 * AUDIENCES_PER_BATCH + 20
    changes = pl.DataFrame(
        {
            "change_id": [f"id-{i:03}" for i in range(count)],
            "audience": [f"a{i:03}" for i in range(count)],
            "member_key": ["m"] * count,
            "action": ["add"] * count,
            "identities": [IDS % "m"] * count,
            "attributes": ['"tier":"gold"'] + [None] * (count - 1),
            "event_ms": [1764547200000] * count,
            "sent_in": pl.Series([None] * count, dtype=pl.String),
        }
    )
    batches = encode(changes, "development", "seg_")
    sizes = [len(ids) for ids in batches["change_ids"]]
    assert sizes == [AUDIENCES_PER_BATCH, AUDIENCES_PER_BATCH, 20]
    bodies = [json.loads(body) for body in batches["_body"]]
    for body, ids in zip(bodies, batches["change_ids"], strict=True):
        assert body["user_attributes"]["tier"] == "gold"
        assert len(body["user_attributes"]) == len(ids) + 1 <= 100
        assert [e["data"]["source_message_id"] for e in body["events"]] == ids.to_list()
    assert len(set(batches["_request_id"])) == 3


def test_slices_never_split_a_member(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "SLICE_CHANGES", 4)
    keys = ["a", "a", "a", "b", "b", "b", "c", "d", "d", "e"]
    changes = pl.DataFrame({"member_key": keys, "change_id": [str(i) for i in range(10)]})
    parts = run._slices(changes)
    assert [p["member_key"].to_list() for p in parts] == [
        ["a", "a", "a", "b", "b", "b"],
        ["c", "d", "d"],
        ["e"],
    ]
    assert run._slices(changes.clear())[0].is_empty()
