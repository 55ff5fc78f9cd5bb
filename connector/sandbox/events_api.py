"""The Event API's endpoints, `POST /v2/events` and `POST /v2/bulkevents`, as the real service
answers them: HTTP Basic auth (401 / 403), request limits, per-batch validation by `checks`,
faults, and 202 / 400 worded by `errors` (a batch located only by its place in the body).
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from connector.sandbox.checks import Checked, Invalid, judge, parse_body
from connector.sandbox.endpoint import endpoint, read_capped
from connector.sandbox.errors import batch_error, batch_spans, opaque_error, position, request_error
from connector.sandbox.reply import Reply, error
from connector.sandbox.state import Sandbox
from connector.spec import MAX_BATCHES_PER_REQUEST, MAX_REQUEST_BYTES

REJECTED_BY_SANDBOX = "rejected_by_sandbox"
TRANSPORT = "events_api"  # how its records and requests are labelled


def routes(sandbox: Sandbox) -> list[BaseRoute]:
    """The two endpoints, answering from `sandbox`'s state."""
    settings = sandbox.settings
    credentials = f"{settings.api_key}:{settings.api_secret}".encode()

    def post(bulk: bool) -> Route:
        async def handle(request: Request) -> Reply:
            sandbox.tally.bulk_requests += int(bulk)
            reply = authorize(credentials, request.headers.get("authorization"))
            if reply is None:
                reply = await receive(sandbox, bulk, await read_capped(request))
            return reply

        path = "/v2/bulkevents" if bulk else "/v2/events"
        return Route(path, endpoint(sandbox, TRANSPORT, handle), methods=["POST"])

    return [post(bulk=False), post(bulk=True)]


def authorize(credentials: bytes, header: str | None) -> Reply | None:
    """None when the header carries `credentials` (`key:secret`); else 401 / 403."""
    if header is None:
        return error(
            401,
            "unauthorized",
            "no Authorization header; send HTTP Basic auth with the API key and secret",
            {"WWW-Authenticate": 'Basic realm="rokt-sandbox"'},
        )
    scheme, _, token = header.strip().partition(" ")
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        given = b""
    if scheme.lower() != "basic" or not hmac.compare_digest(given, credentials):
        return error(
            403,
            "forbidden",
            "the Authorization header is not Basic base64(api_key:api_secret) for this "
            "sandbox; check the key and secret",
        )
    return None


async def receive(sandbox: Sandbox, bulk: bool, body: bytes | None) -> Reply:
    """Answer one authorized POST; `body` None means it exceeded MAX_REQUEST_BYTES.

    A request refused as a whole (too large, not JSON, a bulk body that is no array
    of 1 to 100 batches) is refused before anything is recorded; each valid batch
    counts a receipt, even when a fault then refuses the request. The state is read
    through `sandbox` after each await, as a reset may have replaced it meanwhile.
    """
    problem: Invalid | None = None
    verdicts: list[Checked | Invalid] = []
    count = 0
    text = ""
    try:
        if body is None:
            raise Invalid(
                "request_too_large",
                f"the request body is over {MAX_REQUEST_BYTES} bytes; send fewer batches",
            )
        text, parsed = parse_body(body)
        batches = parsed if bulk and isinstance(parsed, list) else [parsed]
        count = len(batches)
        tally = sandbox.tally
        tally.max_batches_per_request = max(tally.max_batches_per_request, count)
        if bulk and (not isinstance(parsed, list) or not 1 <= count <= MAX_BATCHES_PER_REQUEST):
            got = f"{count} batches" if isinstance(parsed, list) else "no array"
            raise Invalid(
                "invalid_bulk",
                f"/v2/bulkevents takes a JSON array of 1 to {MAX_BATCHES_PER_REQUEST} "
                f"batch objects; got {got}",
            )
        verdicts = [judge(batch) for batch in batches]
    except Invalid as exc:
        problem = exc
    sandbox.records.receive(
        [
            v.source_request_id
            for v in verdicts
            if isinstance(v, Checked) and v.source_request_id is not None
        ]
    )
    cost = min(max(count, 1), MAX_BATCHES_PER_REQUEST)
    refused = sandbox.faults.refusal() or sandbox.bucket.take(cost)
    if refused is not None:
        return refused
    settings = sandbox.settings
    if settings.latency_s > 0:
        await settings.sleep(settings.latency_s)
    # From here to the reply nothing awaits: the bookkeeping is one atomic step
    # (a slow answer waits after it).
    if problem is not None:
        sandbox.tally.request_errors_by_code[problem.code] += 1
        return Reply(400, {"errors": [request_error(problem.code, problem.message)]})
    mishap = sandbox.faults.mishap()
    if mishap == "hang":
        return Reply(0, {}, fate="hang")
    if mishap == "lost":
        return Reply(202, {}, fate="drop")  # lost on the way in: nothing recorded
    reply = _settle(sandbox, bulk, verdicts, text)
    if mishap == "drop":
        return Reply(reply.status, reply.body, fate="drop")  # recorded; the answer is lost
    if mishap == "slow":
        await settings.sleep(settings.slow_s)
    return reply


def _settle(sandbox: Sandbox, bulk: bool, verdicts: list[Checked | Invalid], text: str) -> Reply:
    """Record each valid batch, by its verdict; `text` is the body they were parsed from.

    A bulk request is answered 202, with one error per batch refused; a single
    batch refused (invalid, or by --reject-rate) is answered 400.
    """
    records = sandbox.records
    errors: list[dict[str, str]] = []
    spans: list[tuple[int, int]] = []
    for index, verdict in enumerate(verdicts):
        if isinstance(verdict, Checked):
            request_id = verdict.source_request_id
            if request_id is not None and records.was_accepted(request_id):
                records.resend(request_id)
                continue
            if sandbox.reject_rate.rejects(request_id, verdict.confirmationref):
                verdict = Invalid(REJECTED_BY_SANDBOX, "sandbox --reject-rate rejected this batch")
        if isinstance(verdict, Invalid):
            spans = spans or batch_spans(text, bulk)
            errors.append(_rejection(sandbox, verdict, bulk, index, text, spans[index]))
            continue
        records.accept(
            {
                "received_at": sandbox.settings.wall_clock(),
                "source_request_id": request_id,
                "environment": verdict.environment,
                "confirmationref": verdict.confirmationref,
                "transport": TRANSPORT,
                "batch": verdict.batch,
            }
        )
    if not bulk and errors:
        return Reply(400, {"errors": errors})
    return Reply(202, {"errors": errors} if errors else {})


def _rejection(
    sandbox: Sandbox, problem: Invalid, bulk: bool, index: int, text: str, span: tuple[int, int]
) -> dict[str, str]:
    """The answer's error for a refused batch (at `span` of `text`)."""
    sandbox.tally.rejected += 1
    sandbox.tally.rejections_by_code[problem.code] += 1
    if bulk and sandbox.settings.opaque_errors:
        return opaque_error()
    path = f"[{index}].{problem.path}" if bulk and problem.indexed else problem.path
    at = position(text, span, problem.path)
    return batch_error(problem.code, problem.message, path, at)
