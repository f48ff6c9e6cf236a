"""The HTTP server: a Starlette ASGI app serving endpoints, with safety checks, metrics and readiness.

Starlette rather than FastAPI: it is already a dependency, adds no per-request pydantic validation,
and requests are validated against each model's own signature here; the OpenAPI document is built
from those signatures too.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from forgeml.errors import ConfigError
from forgeml.serving.endpoint import EndpointConfig
from forgeml.serving.outcomes_route import post_outcomes
from forgeml.serving.push import push_rows
from forgeml.serving.recommend import RecommendRoute
from forgeml.serving.routes import (
    PredictRoute,
    healthz,
    http_error,
    index,
    list_models,
    metrics_endpoint,
    openapi,
    readyz,
    show_model,
)
from forgeml.serving.source import ModelSource
from forgeml.serving.state import ServerOptions, ServingState

__all__ = ["ServerOptions", "ServingApp", "ServingState", "app_from_env", "build_app"]


_PREDICT_PREFIX, _PREDICT_SUFFIX = "/v1/models/", "/predict"
_RECOMMEND_PREFIX, _RECOMMEND_SUFFIX = "/v1/recommenders/", "/recommend"


class ServingApp(Starlette):
    """Starlette, with the predict and recommend routes dispatched ahead of its middleware and router.

    POST /v1/models/{name}/predict and /v1/recommenders/{name}/recommend: those routes handle their own errors (every failure becomes a JSON reply), so the generic
    middleware would only add cost to the path every prediction takes.
    """

    predict = PredictRoute()
    recommend = RecommendRoute()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            for prefix, suffix, route in ((_PREDICT_PREFIX, _PREDICT_SUFFIX, self.predict),
                                          (_RECOMMEND_PREFIX, _RECOMMEND_SUFFIX, self.recommend)):
                if path.startswith(prefix) and path.endswith(suffix):
                    name = path[len(prefix):-len(suffix)]
                    if name and "/" not in name:
                        scope["app"] = self
                        scope["path_params"] = {"name": name}
                        await route(scope, receive, send)
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
        Route("/v1/recommenders/{name}/recommend", RecommendRoute(), methods=["POST"]),
    ]
    app = ServingApp(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
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
