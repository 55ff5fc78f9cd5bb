"""How an endpoint of the sandbox speaks HTTP: a body read within the request limit, and a
`Reply` sent by its fate (answered, dropped mid-answer, or held until the client gives up),
each request and answer counted in the sandbox's tally.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from connector.sandbox.reply import Reply
from connector.sandbox.state import Sandbox
from connector.spec import MAX_REQUEST_BYTES

Handler = Callable[[Request], Awaitable[Reply]]


def endpoint(
    sandbox: Sandbox, name: str, handle: Handler
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint answering each request with `handle`'s reply; `name`: the
    endpoint family its requests are counted under (`requests_by_endpoint`)."""

    async def answer(request: Request) -> Response:
        sandbox.tally.requests += 1
        sandbox.tally.requests_by_endpoint[name] += 1
        sandbox.tally.in_flight += 1
        try:
            reply = await handle(request)
            if reply.fate == "hang":
                await _until_disconnected(request)
        finally:
            sandbox.tally.in_flight -= 1
        if reply.fate == "hang":
            return Response(status_code=204)  # nobody is listening any more
        if reply.fate == "drop":
            return _Dropped(status_code=reply.status)
        sandbox.tally.responses_by_status[reply.status] += 1
        return respond(reply)

    return answer


def respond(reply: Reply) -> Response:
    if reply.content is not None:
        return Response(
            reply.content, reply.status, headers=reply.headers, media_type=reply.media_type
        )
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


async def read_capped(request: Request) -> bytes | None:
    """The body, or None as soon as it is known to exceed MAX_REQUEST_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class _Dropped(Response):
    """Starts the answer, then breaks the connection before its body arrives."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"64")]
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        # Returning now, the body unsent, makes the server close the connection.


async def _until_disconnected(request: Request) -> None:
    """Wait until the client gives up on this request (its body is already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
