"""The audience diff, the change plan and the batch JSON (golden), without a sandbox."""

from __future__ import annotations

import json

import polars as pl
import pytest

from connector.audiences.batch import encode
from connector.audiences.members import check_drops, diff
from connector.audiences.plan import plan
from connector.errors import MassDrop

IDS = '"user_identities":{"other":"%s"}'


def members(*rows: tuple[str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "audience": [a for a, _ in rows],
            "member_key": [k for _, k in rows],
            "identities": [IDS % k for _, k in rows],
        },
        schema=dict.fromkeys(("audience", "member_key", "identities"), pl.String),
    )


NO_LAST = pl.DataFrame(
    schema={
        "audience": pl.String,
        "member_key": pl.String,
        "last_change_id": pl.String,
        "last_action": pl.String,
        "last_seq": pl.Int32,
        "last_status": pl.String,
        "last_identities": pl.String,
        "last_event_ms": pl.Int64,
    }
)


def test_the_diff_adds_the_new_drops_the_departed_and_leaves_the_rest() -> None:
    current = members(("vip", "a"), ("vip", "b"), ("lapsed", "a"))
    delivered = members(("vip", "b"), ("vip", "c"))
    changes = diff(current, delivered)
    assert changes.select("audience", "member_key", "action").rows() == [
        ("lapsed", "a", "add"),
        ("vip", "a", "add"),
        ("vip", "c", "drop"),
    ]
    assert diff(current, current).is_empty()


def test_the_guard_names_the_audience_and_the_numbers() -> None:
    delivered = members(*(("vip", str(i)) for i in range(10)), ("gone", "x"))
    current = members(*(("vip", str(i)) for i in range(4)))
    changes = diff(current, delivered)
    with pytest.raises(MassDrop) as refused:
        check_drops(current, delivered, changes, 0.5)
    message = str(refused.value)
    assert "'vip' would drop 6 of its 10 members (60%" in message
    assert "'gone' is missing from the result (1 members" in message
    counts = check_drops(current, delivered, changes, 1.0, allow_missing=True)
    assert counts["vip"] == {"delivered": 10, "adds": 0, "drops": 6}
    assert check_drops(current, delivered, changes, 0.6, allow_missing=True)


def test_each_change_has_its_own_id_and_an_undelivered_one_keeps_its_id() -> None:
    changes = diff(members(("vip", "a")), members())
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
            "last_event_ms": [1000],
        },
        schema=NO_LAST.schema,
    )
    again = plan(changes, last, "development", 2000)
    assert again.changes.select("change_id", "event_ms", "resent").rows() == [
        (add["change_id"], 1000, True)
    ]
    # accepted, then the member leaves: the drop is change 2, with a new id
    accepted = last.with_columns(last_status=pl.lit("accepted"))
    drop = plan(diff(members(), members(("vip", "a"))), accepted, "development", 3000)
    [dropped] = drop.changes.to_dicts()
    assert dropped["seq"] == 2 and dropped["change_id"] != add["change_id"]
    # a pending add no longer wanted is superseded
    gone = plan(diff(members(), members()), last, "development", 3000)
    assert gone.superseded.to_list() == [add["change_id"]] and gone.changes.is_empty()
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
            "event_ms": [1764547200000] * 3,
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
