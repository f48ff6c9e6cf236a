"""What one running model server holds: its options, endpoints, metrics, prediction log and registry poller."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from forgeml.errors import ConfigError
from forgeml.serving.autoscale import STATS_ENV, WorkerReporter
from forgeml.serving.endpoint import Endpoint, EndpointConfig
from forgeml.serving.metrics import ServingMetrics
from forgeml.serving.predlog import PredictionLogger, log_root
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
    # recommendations computed at once in this process; the others queue in arrival order
    recommend_concurrency: int = 1
    # compute them on the event loop (None: when the process serves only recommenders, one at a time)
    recommend_on_event_loop: bool | None = None

    def __post_init__(self) -> None:
        from forgeml.serving.recommend import check_compute

        check_compute(self.recommend_concurrency, self.recommend_on_event_loop)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response (numpy values included)."""
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status, headers, JSON)


def error_response(status: int, message: str, **extra: Any) -> Response:
    """A JSON error answer: {"error": message, ...}."""
    return json_response({"error": message, **extra}, status)


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

        on_loop = options.recommend_on_event_loop
        if on_loop is None:  # a thread hand-off costs more than it saves when no model request could run meanwhile
            on_loop = not endpoints and options.recommend_concurrency == 1
        self.recommenders = RecommenderHost(recommenders, workspace, self.metrics, self.predlog,
                                            options.recommend_concurrency, on_loop)
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


def authorized(state: ServingState, request: Request) -> bool:
    """Whether the request may read what is served: a principal with models.read, or the shared token."""
    if state.gate is not None:
        client = request.client
        return state.gate.check(request.headers.get("authorization", ""), "models.read", None,
                                client.host if client else "", limit=False) is None
    return token_ok(state, request.headers.get("authorization", ""))


def token_ok(state: ServingState, header: str) -> bool:
    """Whether an Authorization header carries the server's bearer token (always, when none is set)."""
    token = state.options.token
    if not token:
        return True
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
