"""What the Event API's answer to one request says about each batch it carried.

Owns: reading the `errors` of a 2xx or 400 answer and tying each to the batch it names
(`Path '[n]`, else `position N` in the body sent, else a `source_request_id`), and
saying when an answer cannot be tied to batches whole (docs/delivery.md).
"""

from __future__ import annotations

import html
import json
import re

from connector.transports.base import Verdict

_PATH_INDEX = re.compile(r"Path '\[(\d+)\]")
_POSITION = re.compile(r"\bposition\s+(\d+)\b", re.IGNORECASE)
_QUOTED = re.compile(r'"[^"]*"')
# Where in the request body an error was found: meaningless once it is tied to a batch
_LOCATOR = re.compile(r"(Path ')\[\d+\]\.?|,? line \d+, position \d+", re.IGNORECASE)
MAX_MESSAGE_CHARS = 1000


def _message(error: object) -> str:
    """An error's text as the ledger keeps it: `code: message`, HTML entities decoded,
    without its place in the request body (`[n]`, line, position: the same mistake
    reads the same in every batch), and any double-quoted value the platform echoed
    replaced (it may be a value sent)."""
    if isinstance(error, dict):
        code, text = error.get("code"), error.get("message")
        parts = [str(p) for p in (code, text) if isinstance(p, str | int) and str(p)]
        message = ": ".join(parts) if parts else json.dumps(error)[:200]
    else:
        message = str(error)
    message = _LOCATOR.sub(r"\1", _QUOTED.sub('"…"', html.unescape(message)))
    message = message.replace(" Path ''.", "")
    return message[:MAX_MESSAGE_CHARS]


def _spans(texts: list[str], bulk: bool, units: str) -> list[tuple[int, int]]:
    """Each batch's `[start, end)` in the body sent, counted in bytes (`utf-8`) or in
    UTF-16 code units: a bulk body is "[" + the batches joined by "," + "]"."""
    if units == "utf-8":
        sizes = [len(t.encode()) for t in texts]
    else:
        sizes = [len(t.encode("utf-16-le")) // 2 for t in texts]
    spans, start = [], 1 if bulk else 0
    for size in sizes:
        spans.append((start, start + size))
        start += size + 1
    return spans


class _Positions:
    """Maps a 1-based character position in an answer onto a batch. The reader may
    count bytes or UTF-16 code units (.NET does the latter); a position counts only
    where both readings name the same batch (always, for an ASCII body)."""

    def __init__(self, texts: list[str], bulk: bool) -> None:
        self._texts, self._bulk = texts, bulk
        self._spans: list[list[tuple[int, int]]] = []

    def batch(self, position: int) -> int | None:
        if not self._spans:  # made once, and only for an answer that needs them
            self._spans = [_spans(self._texts, self._bulk, u) for u in ("utf-8", "utf-16")]
        offset = position - 1  # the 0-based offset of the character it points at
        found = {
            next((i for i, (start, end) in enumerate(spans) if start <= offset < end), None)
            for spans in self._spans
        }
        return found.pop() if len(found) == 1 else None


def _batch_of(
    error: object, count: int, positions: _Positions, request_ids: list[str]
) -> int | None:
    """The index of the batch an error names, or None."""
    text = str(error.get("message", "")) if isinstance(error, dict) else str(error)
    if match := _PATH_INDEX.search(text):
        index = int(match.group(1))
        return index if index < count else None
    if match := _POSITION.search(text):
        return positions.batch(int(match.group(1)))
    if isinstance(error, dict) and isinstance(error.get("source_request_id"), str):
        rid = error["source_request_id"]
        return request_ids.index(rid) if rid in request_ids else None
    return None


def _errors(content: bytes) -> list[object] | None:
    """The `errors` of an answer body: [] when it reports none, None when it cannot be
    read (not JSON, not an object, or `errors` is not a list)."""
    if not content.strip():
        return []
    try:
        body = json.loads(content)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if errors is None:
        return []
    return errors if isinstance(errors, list) else None


def read(content: bytes, texts: list[str], request_ids: list[str], bulk: bool) -> Verdict:
    """What an answer's body (`content`) says of the batches `texts` (as sent, in order;
    `bulk`: sent as a JSON array, else the one batch as the body)."""
    errors = _errors(content)
    if errors is None:
        return Verdict(unattributed=True)
    if not errors:
        return Verdict()
    if len(texts) == 1:  # every error concerns the one batch
        return Verdict({0: "; ".join(_message(e) for e in errors)})
    positions = _Positions(texts, bulk)
    named: dict[int, list[str]] = {}
    unattributed = False
    for error in errors:
        index = _batch_of(error, len(texts), positions, request_ids)
        if index is None:
            unattributed = True
        else:
            named.setdefault(index, []).append(_message(error))
    return Verdict({i: "; ".join(m) for i, m in named.items()}, unattributed)
