"""The ASGI app of `forgeml server`: every route module's operations, the OpenAPI document, health."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from forgeml.server.api import PREFIX, Door, Operation, ServerOptions, json_response

ROUTE_MODULES = ("registry_routes", "runs_routes", "jobs_routes", "data_routes", "auth_routes")


def operations() -> list[Operation]:
    """Return every operation of every route module, in document order."""
    import importlib

    out: list[Operation] = []
    for name in ROUTE_MODULES:
        out.extend(importlib.import_module(f"forgeml.server.{name}").OPERATIONS)
    return out


async def _healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def _not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return json_response({"error": exc.detail or "not found"}, exc.status_code)


def warm(workspace: Any) -> None:
    """Open what every request touches (auth tables, the registry store and its cache) before serving.

    The first request would otherwise pay for importing SQLAlchemy and migrating-checks, and the
    objects made here would sit in the collector's young generations instead of being frozen.
    """
    from forgeml.auth.service import cache_for
    from forgeml.registry import models  # noqa: F401  (resolve's service module, imported once here)
    from forgeml.registry.cache import cache_for as resolve_cache
    from forgeml.registry.schema import store

    cache_for(workspace).fresh(force=True)
    store(workspace)
    resolve_cache(workspace)


def build_app(workspace: Any = None, options: ServerOptions | None = None) -> Starlette:
    """Build the platform API app over a workspace (default: the current one)."""
    from forgeml.auth.service import flush_access_log
    from forgeml.server.openapi import openapi_document

    if workspace is None:
        from forgeml.workspace import current

        workspace = current()
    options = options or ServerOptions()
    door = Door(workspace, options)
    ops = operations()
    routes = [Route(PREFIX + op.path, door.endpoint(op), methods=[op.method], name=op.call.__name__) for op in ops]
    document = openapi_document(ops)

    async def openapi(request: Request) -> Response:
        return json_response(document)

    routes += [Route("/healthz", _healthz, methods=["GET"]), Route("/openapi.json", openapi, methods=["GET"])]
    middleware = []
    if options.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        middleware.append(Middleware(CORSMiddleware, allow_origins=options.cors_origins,
                                     allow_methods=["GET", "POST", "PUT", "DELETE"],
                                     allow_headers=["Authorization", "Content-Type"]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            flush_access_log(workspace)

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={HTTPException: _not_found})
    app.state.door = door
    return app
