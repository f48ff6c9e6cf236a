"""The HTTP server: a Starlette ASGI app serving endpoints, with safety checks, metrics and readiness.

Starlette rather than FastAPI: it is already a dependency, adds no per-request pydantic validation,
and requests are validated against each model's own signature here; the OpenAPI document is built
from those signatures too.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from forgeml.errors import ConfigError, did_you_mean
from forgeml.serving.autoscale import STATS_ENV, WorkerReporter, read_state
from forgeml.serving.endpoint import Endpoint, EndpointConfig, new_request_id
from forgeml.serving.fallback import row_count
from forgeml.serving.metrics import ServingMetrics
from forgeml.serving.openapi import openapi_document
from forgeml.serving.outcomes_route import post_outcomes
from forgeml.serving.predlog import PredictionLogger, log_root
from forgeml.serving.pressure import BUDGET_HEADER, DeadlineExceeded, Overloaded, parse_budget
from forgeml.serving.push import push_rows
from forgeml.serving.recommend import recommend
from forgeml.serving.resilience import DependencyDown
from forgeml.serving.signature import SchemaMismatch
from forgeml.serving.slot import ModelFailed, ModelRejectedInput
from forgeml.serving.source import ModelSource, RegistrySource, fetch_online_features

log = logging.getLogger("forgeml.serving")

JSON = "application/json"


@dataclass
class ServerOptions:
    """Server-wide behaviour: auth, body limit, registry polling and the prediction log."""

    token: str | None = None
    max_body_bytes: int = 1_048_576
    poll_interval_s: float = 2.0
    log_predictions: bool = True
    log_explanations: bool = False
    predlog_flush_s: float = 1.0
    device: str | None = None
    # a worker process sharing a port with others loads before it accepts: none answers "still loading"
    load_before_serving: bool = False
    # accept `forgeml auth` tokens: roles and scopes decide, with a rate limit per token
    principals: bool = False
    rate_per_s: float = 0.0
    burst: float = 0.0


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status, headers, JSON)


def _error(status: int, message: str, **extra: Any) -> Response:
    return _json({"error": message, **extra}, status)


class ServingState:
    """Everything one running app holds: endpoints, metrics, the prediction log and the poller."""

    def __init__(self, endpoints: Sequence[EndpointConfig], options: ServerOptions, workspace: Any = None,
                 source: ModelSource | None = None, clock: Callable[[], float] = time.monotonic):
        if workspace is None:
            from forgeml.workspace import current

            workspace = current()
        names = [e.name for e in endpoints]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"endpoint {dupes[0]!r} is served twice; give each model URI its own name")
        from forgeml.serving.recommend import configured_recommenders

        recommenders = configured_recommenders(workspace)
        if not endpoints and not recommenders:
            raise ConfigError("nothing to serve: give model URIs (forgeml serve fraud@production) "
                              "or [serving.endpoints.NAME] or [serving.recommenders.NAME] tables in plugins.toml")
        self.options = options
        self.workspace = workspace
        self.source = source or RegistrySource(workspace)
        self.metrics = ServingMetrics()
        self.predlog = None
        if options.log_predictions:
            from forgeml.pii.tags import kept_out

            self.predlog = PredictionLogger(log_root(workspace), options.predlog_flush_s,
                                            drop_columns=kept_out(workspace),
                                            keyring=workspace.encryption_keyring())

        def lookup(served: Any, rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
            return fetch_online_features(workspace, served, rows)

        self.endpoints = {e.name: Endpoint(e, self.source, self.metrics, self.predlog, lookup, clock, options.device,
                                           options.log_explanations)
                          for e in endpoints}
        self.load_errors: dict[str, str] = {}
        from forgeml.serving.recommend import RecommenderHost

        self.recommenders = RecommenderHost(recommenders, workspace, self.metrics, self.predlog)
        self.gate = None
        if options.principals:
            from forgeml.serving.access import PrincipalGate

            self.gate = PrincipalGate(workspace, options.rate_per_s, options.burst)
        self._tasks: list[asyncio.Task] = []

    @property
    def ready(self) -> bool:
        """Whether every endpoint's every arm is loaded and warmed."""
        return all(e.ready for e in self.endpoints.values()) and all(self.recommenders.ready.values())

    async def start(self) -> None:
        """Start the log writer, load models in the background and start the registry poller."""
        if self.predlog is not None:
            self.predlog.start()
        loop = asyncio.get_running_loop()
        stats = os.environ.get(STATS_ENV)
        if stats:  # a worker of `forgeml serve --workers auto`: report the load to the supervisor
            reporter = WorkerReporter(Path(stats), self.in_flight, self.recent_p99_ms)
            self._tasks.append(loop.create_task(reporter.run()))
        if self.options.load_before_serving:
            await self._load_all()
            self._tasks.append(loop.create_task(self._poll_forever()))
        else:
            self._tasks.append(loop.create_task(self._load_then_poll()))

    def in_flight(self) -> int:
        """Requests admitted and not yet answered, over all endpoints."""
        return sum(e.admission.in_flight for e in self.endpoints.values())

    def recent_p99_ms(self) -> float | None:
        """The p99 of the answers of the last 2 s over all endpoints (None when there were none)."""
        durations = sorted(d for e in self.endpoints.values() for d in e.admission.recent_seconds(2.0))
        return durations[int(0.99 * (len(durations) - 1))] * 1000.0 if durations else None

    async def _load_all(self) -> None:
        for name, endpoint in self.endpoints.items():
            try:
                await endpoint.load_all()
            except Exception as e:  # reported by /readyz and retried by the poller
                self.load_errors[name] = f"{type(e).__name__}: {e}"
                log.error("endpoint %s: cannot load: %s", name, self.load_errors[name])
        await self.recommenders.load_all()
        # loaded models and libraries live as long as the server: keep the collector off them
        gc.freeze()

    async def _load_then_poll(self) -> None:
        await self._load_all()
        await self._poll_forever()

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.options.poll_interval_s)
            await self.poll_once()

    async def poll_once(self) -> dict[str, list[str]]:
        """Check the registry for every endpoint once and hot-swap what changed."""
        changed = {}
        for name, endpoint in self.endpoints.items():
            found = await endpoint.poll_once()
            if endpoint.ready:
                self.load_errors.pop(name, None)
            if found:
                changed[name] = found
        changed.update(await self.recommenders.poll_once())
        return changed

    async def stop(self) -> None:
        """Stop polling, drain shadow copies and flush the prediction log."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for endpoint in self.endpoints.values():
            await endpoint.close()
        self.recommenders.close()
        if self.predlog is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.predlog.close)


# ---------------------------------------------------------------- request handling
def _authorized(state: ServingState, request: Request) -> bool:
    if state.gate is not None:
        client = request.client
        return state.gate.check(request.headers.get("authorization", ""), "models.read", None,
                                client.host if client else "", limit=False) is None
    return _token_ok(state, request.headers.get("authorization", ""))


def _token_ok(state: ServingState, header: str) -> bool:
    token = state.options.token
    if not token:
        return True
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


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
        elif not _token_ok(state, header):
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
    if not _authorized(state, request):
        return _error(401, "missing or wrong bearer token")
    return _json({"models": [e.describe() for e in state.endpoints.values()]})


async def show_model(request: Request) -> Response:
    """GET /v1/models/{name}: one endpoint."""
    state: ServingState = request.app.state.serving
    if not _authorized(state, request):
        return _error(401, "missing or wrong bearer token")
    name = request.path_params["name"]
    endpoint = state.endpoints.get(name)
    if endpoint is None:
        return _error(404, f"no model named {name!r} is served{did_you_mean(name, state.endpoints)}")
    return _json(endpoint.describe())


async def index(request: Request) -> Response:
    """GET /: what this server is, the models it serves (name, URI, version, readiness) and where the docs are."""
    state: ServingState = request.app.state.serving
    models = [{"name": e.name, "uri": e.config.model, "version": e.primary.version if e.primary else None,
               "ready": e.ready, "predict": f"/v1/models/{e.name}/predict"} for e in state.endpoints.values()]
    if not _authorized(state, request):  # without the token, say where things are but not what is served
        models = []
    return _json({"service": "forgeml serve", "ready": state.ready, "models": models, "docs": "/openapi.json",
                  "routes": ["/v1/models", "/v1/models/{name}", "/v1/models/{name}/predict", "/healthz", "/readyz",
                             "/metrics", "/openapi.json"]})


async def healthz(request: Request) -> Response:
    """GET /healthz: the process is up."""
    return _json({"status": "ok"})


async def readyz(request: Request) -> Response:
    """GET /readyz: 200 only when every model is loaded and warmed."""
    state: ServingState = request.app.state.serving
    models = {name: e.ready for name, e in state.endpoints.items()}
    body = {"ready": state.ready, "models": models, "recommenders": state.recommenders.ready,
            "errors": {**state.load_errors, **state.recommenders.errors}}
    return _json(body, 200 if state.ready else 503)


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
    return _json(openapi_document(state))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, exc.detail or "error")


_PREDICT_PREFIX, _PREDICT_SUFFIX = "/v1/models/", "/predict"


class ServingApp(Starlette):
    """Starlette, with POST /v1/models/{name}/predict dispatched ahead of its middleware and router.

    That route handles its own errors (every failure becomes a JSON reply), so the generic
    middleware would only add cost to the path every prediction takes.
    """

    predict = PredictRoute()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith(_PREDICT_PREFIX) and path.endswith(_PREDICT_SUFFIX):
                name = path[len(_PREDICT_PREFIX):-len(_PREDICT_SUFFIX)]
                if name and "/" not in name:
                    scope["app"] = self
                    scope["path_params"] = {"name": name}
                    await self.predict(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def build_app(endpoints: Sequence[EndpointConfig], options: ServerOptions | None = None, workspace: Any = None,
              source: ModelSource | None = None, clock: Callable[[], float] = time.monotonic) -> Starlette:
    """Build the ASGI app for these endpoints; models load in the background once it starts."""
    state = ServingState(endpoints, options or ServerOptions(), workspace, source, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    routes = [
        Route("/v1/models/{name}/predict", PredictRoute(), methods=["POST"]),
        Route("/v1/models/{name}", show_model, methods=["GET"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/", index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/v1/push/{view}", push_rows, methods=["POST"]),
        Route("/v1/outcomes", post_outcomes, methods=["POST"]),
        Route("/v1/recommenders/{name}/recommend", recommend, methods=["POST"]),
    ]
    app = ServingApp(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error})
    app.state.serving = state
    return app


def app_from_env() -> Starlette:
    """Build the app from FORGEML_SERVE_SPEC (JSON written by `forgeml serve` for worker processes)."""
    from forgeml.serving.config import spec_to_app_args

    spec = os.environ.get("FORGEML_SERVE_SPEC")
    if not spec:
        raise ConfigError("FORGEML_SERVE_SPEC is not set; start the server with `forgeml serve`")
    from forgeml.serving.server import tune_interpreter

    tune_interpreter()
    endpoints, options = spec_to_app_args(orjson.loads(spec))
    options.load_before_serving = True
    return build_app(endpoints, options)
