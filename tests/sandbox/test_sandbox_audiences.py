"""The sandbox's checks of audience batches: a batch of the connector's own encoder is
accepted; each rule refuses its mutation with its code."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest

from connector.audiences.batch import encode
from connector.sandbox.checks import Invalid, check_batch

VIP, LAPSED = "00000000-0000-5000-8000-000000000001", "00000000-0000-5000-8000-000000000002"


def audience_batch() -> dict[str, Any]:
    changes = pl.DataFrame(
        {
            "change_id": [VIP, LAPSED],
            "audience": ["vip", "lapsed"],
            "member_key": ["m", "m"],
            "action": ["add", "drop"],
            "identities": ['"user_identities":{"customerid":"c-1"}'] * 2,
            "attributes": ['"tier":"gold"', None],
            "event_ms": [1764547200000] * 2,
            "sent_in": pl.Series([None, None], dtype=pl.String),
        }
    )
    batch: dict[str, Any] = json.loads(encode(changes, "development", "audience_")["_body"][0])
    return batch


def test_the_connectors_audience_batch_is_accepted() -> None:
    checked = check_batch(audience_batch())
    assert checked.confirmationref == f"audience:{VIP},{LAPSED}"


def _data(batch: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = batch["events"][0]["data"]
    return data


MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "status": (
        lambda b: _data(b)["custom_attributes"].update(status="remove"),
        "invalid_audience_status",
    ),
    "custom event type": (
        lambda b: _data(b).update(custom_event_type="transaction"),
        "invalid_custom_event_type",
    ),
    "second event named otherwise": (
        lambda b: b["events"][1]["data"].update(event_name="conversion"),
        "invalid_event_name",
    ),
    "event type": (lambda b: b["events"][0].update(event_type="screen_view"), "invalid_event_type"),
    "message id": (lambda b: _data(b).update(source_message_id="x"), "invalid_source_message_id"),
    "timestamp": (lambda b: _data(b).update(timestamp_unixtime_ms="soon"), "invalid_timestamp"),
    "audience name": (
        lambda b: _data(b)["custom_attributes"].update(audience_name=""),
        "invalid_custom_attributes",
    ),
    "extra attribute": (
        lambda b: _data(b)["custom_attributes"].update(extra=1),
        "invalid_custom_attributes",
    ),
    "flag as text": (
        lambda b: b["user_attributes"].update(audience_vip="true"),
        "invalid_user_attributes",
    ),
    "flag disagrees": (
        lambda b: b["user_attributes"].update(audience_lapsed=True),
        "invalid_user_attributes",
    ),
    "audience twice": (
        lambda b: b["events"][1]["data"]["custom_attributes"].update(audience_name="lapsed"),
        "invalid_events",
    ),
    "no identity": (lambda b: b.pop("user_identities"), "missing_identity"),
}


@pytest.mark.parametrize("name", MUTATIONS)
def test_each_rule_refuses_its_mutation(name: str) -> None:
    mutate, code = MUTATIONS[name]
    batch = copy.deepcopy(audience_batch())
    mutate(batch)
    with pytest.raises(Invalid) as refused:
        check_batch(batch)
    assert refused.value.code == code
