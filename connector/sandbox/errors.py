"""How the sandbox words its 400s, as the platform's .NET (Newtonsoft) JSON reader: where each
batch lies in a body, the `Path '...', line 1, position N.` locator (N 1-based, in UTF-16
code units), and the error objects of request-level, per-batch and opaque answers.
"""

from __future__ import annotations

import json
import re

BAD_REQUEST = "BAD_REQUEST"
OPAQUE_MESSAGE = "One or more batches in the request could not be processed"

Span = tuple[int, int]  # [start, end) character offsets of one batch in the body text

_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, as `json` skips it
_INDEX = re.compile(r"\[\d+\]")


def _skip(text: str, at: int) -> int:
    match = _WHITESPACE.match(text, at)
    return at if match is None else match.end()


def batch_spans(text: str, bulk: bool) -> list[Span]:
    """Where each batch of `text` (a body already parsed as valid JSON) lies.

    For a bulk body (a JSON array) one span per element, in order; for a single
    body the span of the one value.
    """
    start = _skip(text, 0)
    if not bulk:
        return [(start, _DECODER.raw_decode(text, start)[1])]
    spans: list[Span] = []
    at = start + 1  # past "["
    while True:
        at = _skip(text, at)
        if text[at] == "]":
            return spans
        end = _DECODER.raw_decode(text, at)[1]
        spans.append((at, end))
        at = _skip(text, end)
        if text[at] == "]":
            return spans
        at += 1  # past ","


def path_keys(path: str) -> list[str]:
    """The object keys of a reader path: `[0].events[0].data` -> events, data."""
    return [key for part in path.split(".") if (key := _INDEX.sub("", part))]


def key_end(text: str, span: Span, path: str) -> int | None:
    """The index of the closing quote of the last key of `path` inside `span`.

    The keys are looked for in order, each after the one before (so `amount` under
    `custom_attributes` is not taken for one under `user_attributes`); None when a key
    is not there as written by a compact serializer (absent, or escaped differently).
    """
    start, end = span
    found: int | None = None
    for key in path_keys(path):
        quoted = json.dumps(key, ensure_ascii=False)
        match = re.compile(re.escape(quoted) + r"[ \t\n\r]*:").search(text, start, end)
        if match is None:
            return None
        found = match.start() + len(quoted) - 1
        start = found + 1
    return found


def utf16_offset(text: str, index: int) -> int:
    """How many UTF-16 code units (what .NET counts) precede `text[index]`."""
    return len(text[:index].encode("utf-16-le")) // 2


def position(text: str, span: Span, path: str) -> int:
    """The reader's 1-based `position` for an error about the batch at `span`.

    It points at the end of the offending key when the key is in the batch, else at
    the batch's first character: always inside the batch.
    """
    end = key_end(text, span, path)
    return utf16_offset(text, span[0] if end is None else end) + 1


def request_error(code: str, explanation: str) -> dict[str, str]:
    """An error about the whole request: no batch locator."""
    return {"code": BAD_REQUEST, "message": f"{explanation} ({code})."}


def batch_error(code: str, explanation: str, path: str, at: int) -> dict[str, str]:
    """An error about one batch, located as the .NET reader does (`at`: its position)."""
    return {
        "code": BAD_REQUEST,
        "message": f"{explanation} ({code}). Path '{path}', line 1, position {at}.",
    }


def opaque_error() -> dict[str, str]:
    """An error about one batch of a bulk request that does not say which batch."""
    return {"code": BAD_REQUEST, "message": OPAQUE_MESSAGE}
