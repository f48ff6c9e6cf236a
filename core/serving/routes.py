"""The server's routes: the predict hot path as a bare ASGI app, and the model, health, metrics and docs routes."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from forgeml.errors import did_you_mean
from forgeml.serving.autoscale import STATS_ENV, read_state
from forgeml.serving.endpoint import Endpoint, new_request_id
from forgeml.serving.fallback import row_count
from forgeml.serving.openapi import openapi_document
from forgeml.serving.pressure import BUDGET_HEADER, DeadlineExceeded, Overloaded, parse_budget
from forgeml.serving.resilience import DependencyDown
from forgeml.serving.signature import SchemaMismatch
from forgeml.serving.slot import ModelFailed, ModelRejectedInput
from forgeml.serving.state import ServingState, authorized, error_response, json_response, token_ok

log = logging.getLogger("forgeml.serving")


class _Reply(Exception):
    """A finished answer (status and JSON body) raised from deep in the predict path."""

    def __init__(self, status: int, body: dict[str, Any], reason: str = "", headers: list | None = None):
        self.status = status
        self.body = body
        self.reason = reason
        self.headers = headers or []


async def _read_body(receive: Any, declared: bytes | None, limit: int) -> bytes:
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _Reply(413, {"error": f"request body of {int(declared)} bytes exceeds the {limit}-byte limit"},
                             "too_large")
        except ValueError:
            raise _Reply(400, {"error": "Content-Length is not a number"}, "malformed_json") from None
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Reply(400, {"error": "client disconnected"}, "disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _Reply(413, {"error": f"request body exceeds the {limit}-byte limit"}, "too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _check_rows(endpoint: Endpoint, payload: dict[str, Any]) -> None:
    """Refuse a request carrying more rows than the endpoint's limit, before any work is done for it."""
    limit = endpoint.config.max_rows
    if not limit:
        return
    given = row_count(payload)
    if given > limit:
        raise _Reply(413, {"error": f"request of {given} rows exceeds model {endpoint.name!r}'s limit of {limit} "
                                    f"rows per request; split it or raise [serving.endpoints.{endpoint.name}] "
                                    "max_rows", "field": "rows", "max_rows": limit}, "too_many_rows")


class PredictRoute:
    """POST /v1/models/{name}/predict: rows of features or entity keys in, predictions out.

    A bare ASGI app rather than a Starlette request handler: this is the hot path, and skipping the
    Request object and response wrappers saves a tenth of the per-request cost.
    """

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        state: ServingState = scope["app"].state.serving
        metrics = state.metrics
        headers = {}
        for key, value in scope["headers"]:
            if key in (b"authorization", b"content-length", b"x-request-id", BUDGET_HEADER):
                headers[key] = value
        try:
            body = await self._answer(state, scope, receive, headers)
            status, extra = 200, []
        except _Reply as reply:
            if reply.reason:
                metrics.child(metrics.rejected, reply.reason).inc()
            status, body, extra = reply.status, reply.body, reply.headers
        data = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode()), *extra]})
        await send({"type": "http.response.body", "body": data})

    async def _answer(self, state: ServingState, scope: dict[str, Any], receive: Any,
                      headers: dict[bytes, bytes]) -> dict[str, Any]:
        name = scope["path_params"]["name"]
        header = headers.get(b"authorization", b"").decode("latin-1")
        if state.gate is not None:
            client = scope.get("client")
            denied = state.gate.check(header, "models.predict", name, client[0] if client else "")
            if denied is not None:
                raise _Reply(denied[0], {"error": denied[1]}, "unauthorized", denied[2])
        elif not token_ok(state, header):
            raise _Reply(401, {"error": "missing or wrong bearer token"}, "unauthorized")
        endpoint = state.endpoints.get(name)
        if endpoint is None:
            raise _Reply(404, {"error": f"no model named {name!r} is served{did_you_mean(name, state.endpoints)}; "
                                        f"served: {', '.join(sorted(state.endpoints))}"}, "unknown_model")
        body = await _read_body(receive, headers.get(b"content-length"), state.options.max_body_bytes)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise _Reply(400, {"error": f"request body is not valid JSON: {e}"}, "malformed_json") from None
        if not isinstance(payload, dict):
            raise _Reply(422, {"error": 'the body must be a JSON object with "rows" or "entities"', "field": "body"},
                         "schema")
        _check_rows(endpoint, payload)
        if not endpoint.ready:
            raise _Reply(503, {"error": f"model {name!r} is still loading; retry when /readyz says ready"},
                         "loading", [(b"retry-after", b"1")])
        given_id = headers.get(b"x-request-id")
        request_id = given_id.decode("latin-1")[:128] if given_id else new_request_id()
        try:
            budget = parse_budget(headers.get(BUDGET_HEADER))
        except ValueError as e:
            raise _Reply(400, {"error": str(e)}, "bad_budget") from None
        try:
            return await endpoint.predict(payload, request_id, budget)
        except Overloaded as e:
            raise _Reply(503, {"error": str(e)}, f"shed_{e.reason}", [(b"retry-after", b"1")]) from None
        except DeadlineExceeded as e:
            raise _Reply(503, {"error": f"no answer within the latency budget: {e}"}, "deadline",
                         [(b"retry-after", b"1")]) from None
        except SchemaMismatch as e:
            raise _Reply(422, {"error": str(e), "field": e.field}, "schema") from None
        except ModelRejectedInput as e:
            raise _Reply(422, {"error": str(e), "field": "body"}, "model_rejected") from None
        except DependencyDown as e:
            log.warning("endpoint %s: %s", name, e)
            raise _Reply(503, {"error": str(e)}, "dependency_down", [(b"retry-after", b"1")]) from None
        except ModelFailed as e:
            log.warning("endpoint %s: %s", name, e)
            raise _Reply(500, {"error": f"prediction failed: {e}"}) from None
        except Exception as e:
            log.exception("endpoint %s: prediction failed", name)
            raise _Reply(500, {"error": f"prediction failed: {type(e).__name__}: {e}"}) from None


async def list_models(request: Request) -> Response:
    """GET /v1/models: every endpoint, its arms, versions, traffic policy and readiness."""
    state: ServingState = request.app.state.serving
    if not authorized(state, request):
        return error_response(401, "missing or wrong bearer token")
    return json_response({"models": [e.describe() for e in state.endpoints.values()]})


async def show_model(request: Request) -> Response:
    """GET /v1/models/{name}: one endpoint."""
    state: ServingState = request.app.state.serving
    if not authorized(state, request):
        return error_response(401, "missing or wrong bearer token")
    name = request.path_params["name"]
    endpoint = state.endpoints.get(name)
    if endpoint is None:
        return error_response(404, f"no model named {name!r} is served{did_you_mean(name, state.endpoints)}")
    return json_response(endpoint.describe())


async def index(request: Request) -> Response:
    """GET /: what this server is, the models it serves (name, URI, version, readiness) and where the docs are."""
    state: ServingState = request.app.state.serving
    models = [{"name": e.name, "uri": e.config.model, "version": e.primary.version if e.primary else None,
               "ready": e.ready, "predict": f"/v1/models/{e.name}/predict"} for e in state.endpoints.values()]
    if not authorized(state, request):  # without the token, say where things are but not what is served
        models = []
    return json_response({"service": "forgeml serve", "ready": state.ready, "models": models, "docs": "/openapi.json",
                  "routes": ["/v1/models", "/v1/models/{name}", "/v1/models/{name}/predict", "/healthz", "/readyz",
                             "/metrics", "/openapi.json"]})


async def healthz(request: Request) -> Response:
    """GET /healthz: the process is up."""
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """GET /readyz: 200 only when every model is loaded and warmed."""
    state: ServingState = request.app.state.serving
    models = {name: e.ready for name, e in state.endpoints.items()}
    body = {"ready": state.ready, "models": models, "recommenders": state.recommenders.ready,
            "errors": {**state.load_errors, **state.recommenders.errors}}
    return json_response(body, 200 if state.ready else 503)


async def metrics_endpoint(request: Request) -> Response:
    """GET /metrics: Prometheus exposition."""
    state: ServingState = request.app.state.serving
    if state.predlog is not None:
        state.metrics.log_dropped.set(state.predlog.dropped_rows)
        state.metrics.log_errors.set(state.predlog.errors)
    stats = os.environ.get(STATS_ENV)
    scaled = read_state(Path(stats)) if stats else None
    if scaled is not None:
        state.metrics.workers.set(scaled["workers"])
        state.metrics.workers_bounds.labels("min").set(scaled["min"])
        state.metrics.workers_bounds.labels("max").set(scaled["max"])
    for endpoint in state.endpoints.values():
        if endpoint.policy.canary is not None:
            state.metrics.canary_fraction.labels(endpoint.name).set(endpoint.policy.canary.fraction())
    text, content_type = state.metrics.render()
    return Response(text, 200, media_type=content_type)


async def openapi(request: Request) -> Response:
    """GET /openapi.json: the document built from each served model's signature."""
    state: ServingState = request.app.state.serving
    return json_response(openapi_document(state))


async def http_error(request: Request, exc: Exception) -> Response:
    """Answer a routing error (404, 405) as JSON, like every other error."""
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail or "error")
