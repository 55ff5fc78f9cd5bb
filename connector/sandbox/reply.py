"""An answer of the sandbox before it becomes HTTP: `Reply` (status, JSON body or other
content, headers and fate), and `error` for a refusal's `{"errors": [{"code", "message"}]}`
body (the Event API's 400s about a request or a batch are worded by `errors`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    fate: Literal["answer", "drop", "hang"] = "answer"  # drop: the connection breaks mid-answer
    content: bytes | None = None  # sent instead of `body` when set (the pixels' GIF)
    media_type: str | None = None  # the Content-Type of `content`


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"errors": [{"code": code, "message": message}]}, headers or {})
