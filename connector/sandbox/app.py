"""The sandbox as an ASGI app (`create_app`): one `Sandbox` state, the routes of each endpoint
family on it (the Event API, Rokt's Pixel Service, RudderStack's Pixel API), and the
inspection endpoints tests read it through: `GET /_sandbox/stats`, `GET /_sandbox/batches`,
`POST /_sandbox/reset`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import connector.sandbox.events_api as events_api
import connector.sandbox.pixel as pixel
import connector.sandbox.rudderstack as rudderstack
from connector.sandbox.endpoint import respond
from connector.sandbox.reply import error
from connector.sandbox.settings import SandboxSettings
from connector.sandbox.state import Sandbox

_MAX_PAGE = 10_000


def create_app(settings: SandboxSettings) -> Starlette:
    """The sandbox ASGI app; its state is `app.state.sandbox` (a `Sandbox`)."""
    sandbox = Sandbox(settings)
    families = [*events_api.routes(sandbox), *pixel.routes(sandbox), *rudderstack.routes(sandbox)]
    app = Starlette(routes=[*families, *_inspection(sandbox)])
    app.state.sandbox = sandbox
    return app


def _inspection(sandbox: Sandbox) -> list[BaseRoute]:
    """What the sandbox received, page by page, its counters, and a way to forget them."""

    async def stats(request: Request) -> Response:
        return JSONResponse(sandbox.stats())

    async def batches(request: Request) -> Response:
        try:
            offset = int(request.query_params.get("offset", "0"))
            limit = int(request.query_params.get("limit", "1000"))
            if offset < 0 or not 0 <= limit <= _MAX_PAGE:
                raise ValueError
        except ValueError:
            message = f"offset must be an integer >= 0 and limit an integer 0..{_MAX_PAGE}"
            return respond(error(400, "invalid_query", message))
        return JSONResponse(sandbox.recorded(offset, limit))

    async def reset(request: Request) -> Response:
        sandbox.reset()
        return JSONResponse({"reset": True})

    return [
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/batches", batches, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
    ]
