"""POST /v1/outcomes: late labels and events for served requests, as ``forgeml.log_outcome`` records them."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from forgeml.serving.push import _reply, authorized_body

MAX_OUTCOMES = 100_000
USAGE = 'send {"outcomes": [{"request_id": "...", "name": "purchase", "value": 1, "time": "2026-12-07T14:00:00Z"}]}'


async def post_outcomes(request: Request) -> Response:
    """Record a JSON body of outcomes (one object, or {"outcomes": [...]}); answer how many were stored."""
    from forgeml.errors import ForgeError
    from forgeml.feedback.outcomes import log_outcomes

    parsed = await authorized_body(request)
    if isinstance(parsed, Response):
        return parsed
    state, body = parsed
    rows = body.get("outcomes", [body] if "request_id" in body else None) if isinstance(body, dict) else None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        return _reply({"error": USAGE}, 422)
    if len(rows) > MAX_OUTCOMES:
        return _reply({"error": f"at most {MAX_OUTCOMES} outcomes per request, got {len(rows)}"}, 413)
    try:
        stored = await run_in_threadpool(log_outcomes, rows, state.workspace)
    except ForgeError as e:
        return _reply({"error": str(e)}, 422)
    return _reply({"recorded": stored})
