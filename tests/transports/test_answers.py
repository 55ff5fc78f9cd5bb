"""Tying the Event API's errors to the batches of a request, on the platform's own texts.

The requests and answers below are those of RudderStack's Rokt destination fixtures
(rudderlabs/rudder-transformer, src/v0/destinations/rokt): the platform names a batch
by `Path '[n]...'` or only by the `position` of a .NET JSON reader in the body sent.
"""

from __future__ import annotations

import json
from typing import Any

from connector.transports.base import Verdict
from connector.transports.events_api_answers import read

GUID_ERROR = (
    "Error converting value &quot;not-a-guid&quot; to type 'System.Guid'. "
    "Path '[0].device_info.ios_advertising_id', line 1, position 153."
)


def currency_error(position: int) -> str:
    return (
        "Error reading string. Unexpected token: StartObject. "
        f"Path 'data.custom_attributes.currency', line 1, position {position}."
    )


def batch(customer: str, message: str, currency: bool = False, **top: Any) -> str:
    attributes: dict[str, Any] = {"conversiontype": "purchase"}
    if currency:
        attributes = {"currency": {"code": "USD"}, **attributes}
    data = {
        "event_name": "conversion",
        "custom_event_type": "transaction",
        "timestamp_unixtime_ms": 1790640000000,
        "source_message_id": message,
        "custom_attributes": attributes,
    }
    body = {
        "schema_version": 2,
        "environment": "production",
        "user_identities": {"customerid": customer},
        **top,
        "events": [{"event_type": "custom_event", "data": data}],
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def answer(*messages: str, **extra: Any) -> bytes:
    errors = [{"code": "BAD_REQUEST", "message": m, **extra} for m in messages]
    return json.dumps({"errors": errors}).encode()


PARTIAL = [
    batch("synthetic-customer-7", "message-7"),
    batch("synthetic-customer-8", "message-8", currency=True),
    batch("synthetic-customer-9", "message-9"),
]
ALL_INVALID = [
    batch("synthetic-customer-10", "message-10", device_info={"ios_advertising_id": "not-a-guid"}),
    batch("synthetic-customer-11", "message-11", currency=True),
]
IDS3 = ["r0", "r1", "r2"]


def test_a_position_without_an_index_names_the_batch_whose_span_holds_it() -> None:
    verdict = read(answer(currency_error(648)), PARTIAL, IDS3, bulk=True)
    reason = "Error reading string. Unexpected token: StartObject. "
    reason += "Path 'data.custom_attributes.currency'."  # where in the body: not kept
    assert verdict == Verdict({1: f"BAD_REQUEST: {reason}"})


def test_path_index_and_position_in_one_answer_name_both_batches() -> None:
    verdict = read(answer(GUID_ERROR, currency_error(702)), ALL_INVALID, ["a", "b"], True)
    assert set(verdict.named) == {0, 1} and not verdict.unattributed
    # the platform's HTML-escaped quotes are decoded, the value it echoed is not kept,
    # nor is the place in the request body
    assert verdict.named[0] == (
        "BAD_REQUEST: Error converting value \"…\" to type 'System.Guid'. "
        "Path 'device_info.ios_advertising_id'."
    )


def test_the_fixture_positions_point_inside_their_batches() -> None:
    body = "[" + ",".join(ALL_INVALID) + "]"
    assert body[153 - 1] == '"' and body[: 153 - 1].endswith('"not-a-guid')
    assert body[702 - 1] == "{" and body[: 702 - 1].endswith('"currency":')


def test_several_errors_for_one_batch_are_kept_together() -> None:
    second = "Something else. Path 'events[0].data', line 1, position 700."
    verdict = read(answer(currency_error(648), second.replace("700", "660")), PARTIAL, IDS3, True)
    assert list(verdict.named) == [1] and verdict.named[1].count("BAD_REQUEST") == 2


def test_an_index_out_of_range_is_not_attributed() -> None:
    message = GUID_ERROR.replace("[0]", "[3]")
    verdict = read(answer(message), PARTIAL, IDS3, bulk=True)
    assert verdict == Verdict({}, unattributed=True)


def test_a_position_between_batches_or_past_the_body_is_not_attributed() -> None:
    comma = 1 + len(PARTIAL[0]) + 1  # 1-based position of the comma after batch 0
    for position in (1, comma, 10_000):
        verdict = read(answer(currency_error(position)), PARTIAL, IDS3, bulk=True)
        assert verdict.unattributed and not verdict.named, position


def test_a_position_where_bytes_and_utf16_units_disagree_is_not_attributed() -> None:
    accented = [batch("c-é" * 40, "m-0"), batch("c-1", "m-1"), batch("c-2", "m-2")]
    chars = 1 + len(accented[0]) + 1 + 1  # batch 1's first character; in bytes, batch 0
    assert read(answer(currency_error(chars)), accented, IDS3, True).unattributed
    inside = 1 + len(accented[0].encode()) + 1 + 10  # ...and in both readings here
    assert list(read(answer(currency_error(inside)), accented, IDS3, True).named) == [1]


def test_a_source_request_id_is_the_last_resort() -> None:
    verdict = read(answer("bad", source_request_id="r2"), PARTIAL, IDS3, bulk=True)
    assert verdict.named == {2: "BAD_REQUEST: bad"}
    assert read(answer("bad", source_request_id="zz"), PARTIAL, IDS3, True).unattributed


def test_an_error_naming_no_batch_leaves_the_answer_unattributed() -> None:
    verdict = read(answer(currency_error(648), "Internal error"), PARTIAL, IDS3, bulk=True)
    assert list(verdict.named) == [1] and verdict.unattributed


def test_garbage_is_never_read_as_acceptance() -> None:
    for content in (b"<html>oops</html>", b"[1, 2]", b'{"errors": "bad"}', b'"x"'):
        assert read(content, PARTIAL, IDS3, bulk=True).unattributed, content
    errors = json.dumps({"errors": [42, None, ["x"]]}).encode()
    assert read(errors, PARTIAL, IDS3, bulk=True) == Verdict({}, True)


def test_no_errors_is_a_clean_answer() -> None:
    for content in (b"", b"  ", b"{}", b'{"errors": []}', b'{"errors": null}'):
        assert read(content, PARTIAL, IDS3, bulk=True) == Verdict(), content


def test_every_error_of_a_one_batch_request_concerns_that_batch() -> None:
    verdict = read(answer(currency_error(314), "Internal error"), PARTIAL[1:2], ["r"], False)
    assert list(verdict.named) == [0] and not verdict.unattributed
    assert verdict.named[0].endswith("; BAD_REQUEST: Internal error")
