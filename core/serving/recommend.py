"""POST /v1/recommenders/{name}/recommend: the recommenders of [serving.recommenders] on the model server.

Each request runs its recommender (retrieval, one batched feature lookup, ranking, rules); the reply
lists the top items with their scores and sources. At most ``[serving] recommend_concurrency``
recommendations compute at once in one server process, each on a compute thread, and later requests
wait their turn in arrival order (the wait counts in their ``latency_ms``): more at once than there
are free cores only makes them take turns on the interpreter lock, each one slower and the event loop
with them. A process serving only recommenders computes them on its event loop instead, one at a time
(``recommend_on_event_loop``): handing each request to a thread and back costs more CPU than the
HTTP work it would let overlap. While an interleaving experiment runs on a recommender, its requests
run both rankers and return their team-draft merge (``forgeml.serving.interleaved``). Per-stage
latency goes to the metrics and, with every shown item as an impression, to the prediction log under
``model=recommender.NAME``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson

from forgeml.errors import ConfigError, ForgeError, ValidationError, did_you_mean
from forgeml.serving.endpoint import new_request_id
from forgeml.serving.interleaved import InterleavingLayouts, log_impressions, merge_answers
from forgeml.serving.routes import _read_body, _Reply

log = logging.getLogger("forgeml.serving")

LOG_PREFIX = "recommender."


def configured_recommenders(workspace: Any) -> dict[str, Any]:
    """Return the [serving.recommenders.NAME] tables of a workspace (none for a workspace without config)."""
    config = getattr(workspace, "config", None)
    if config is None:
        return {}
    return dict(config.section("serving").recommenders or {})


class RecommenderHost:
    """The recommenders one app serves: built from their tables, loaded at start, polled with the models."""

    def __init__(self, tables: Mapping[str, Any], workspace: Any, metrics: Any, predlog: Any, concurrency: int = 1,
                 on_loop: bool = False):
        from forgeml.recsys import Recommender

        check_compute(concurrency, on_loop)
        self.recommenders = {name: Recommender(name, table, workspace) for name, table in tables.items()}
        self.metrics = metrics
        self.predlog = predlog
        self.ready: dict[str, bool] = dict.fromkeys(self.recommenders, False)
        self.errors: dict[str, str] = {}
        self.layouts = InterleavingLayouts(workspace, LOG_PREFIX)
        self.on_loop = on_loop
        # a request takes a slot before it computes and gives it back on the event loop: the others wait in
        # arrival order, and a compute thread does not start the next one while this one's reply waits for the GIL
        self.slots = asyncio.Semaphore(concurrency)
        self.executor = None if on_loop else cf.ThreadPoolExecutor(max_workers=concurrency,
                                                                   thread_name_prefix="forgeml-recommend")
        self._meters: dict[str, _Meters] = {}
        for name in self.recommenders:  # every series shows in /metrics from the start, at zero
            self.meters(name)

    async def compute(self, rec: Any, args: dict[str, Any]) -> Any:
        """Run one recommendation once a slot is free: on the event loop, or on a compute thread."""
        if self.slots.locked():  # it waits: /metrics shows how many do
            queued = self.meters(rec.name).queued
            queued.inc()
            try:
                await self.slots.acquire()
            finally:
                queued.dec()
        else:
            await self.slots.acquire()
        try:
            if self.executor is None:
                # one turn of the loop first: requests that arrived meanwhile are read and queue behind
                # this one, so they are answered in arrival order rather than in the order sockets are polled
                await asyncio.sleep(0)
                return rec.recommend(**args)
            return await asyncio.get_running_loop().run_in_executor(self.executor, lambda: rec.recommend(**args))
        finally:
            self.slots.release()

    def meters(self, name: str) -> _Meters:
        """A recommender's metric children."""
        found = self._meters.get(name)
        if found is None:
            found = self._meters[name] = _Meters(self.metrics, name)
        return found

    def partner(self, name: str) -> tuple[dict[str, Any], Any] | None:
        """Return (layout, candidate recommender) while an interleaving experiment runs on ``name``."""
        layout = self.layouts.running(name)
        if layout is None:
            return None
        rankers = layout.get("rankers") or {}
        control, candidate = (layout.get("arms") or [None, None])[:2]
        other = rankers.get(candidate)
        if rankers.get(control) != name or other not in self.recommenders or not self.ready.get(other):
            log.warning("recommender %s: interleaving experiment %s needs recommender %r served and ready; "
                        "answering alone", name, layout.get("experiment"), other)
            return None
        return layout, self.recommenders[other]

    async def load_all(self) -> None:
        """Load every recommender's ranking model and embedding tables."""
        loop = asyncio.get_running_loop()
        for name, rec in self.recommenders.items():
            try:
                await loop.run_in_executor(None, rec.load)
                self.ready[name] = True
                self.errors.pop(name, None)
            except ForgeError as e:  # reported by /readyz and retried by the poller
                self.errors[name] = f"{type(e).__name__}: {e}"
                log.error("recommender %s: cannot load: %s", name, self.errors[name])

    async def poll_once(self) -> dict[str, list[str]]:
        """Swap in ranking models and embedding tables that moved in the registry."""
        loop = asyncio.get_running_loop()
        changed = {}
        for name, rec in self.recommenders.items():
            if not self.ready[name]:
                await self.load_all()
                continue
            try:
                swapped = await loop.run_in_executor(None, rec.poll)
            except ForgeError as e:  # keep serving what is loaded; say why the swap did not happen
                log.warning("recommender %s: poll failed: %s", name, e)
                continue
            if swapped:
                changed[name] = swapped
        return changed

    def close(self) -> None:
        """Stop the compute threads and every recommender's threads."""
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        for rec in self.recommenders.values():
            rec.close()

    def observe(self, name: str, answer: Any, request_id: str, impressions: bool = True) -> None:
        """Record one answer's stage latencies, source outcomes and (unless merged elsewhere) impressions."""
        self.meters(name).record(answer)
        if self.predlog is None or not answer.items or not impressions:
            return
        items = answer.items
        n = len(items)
        stages = answer.stages_ms
        inputs: dict[str, list[Any]] = {
            "user": [str(answer.user)] * n, "item": [str(c.item) for c in items],
            "position": list(range(1, n + 1)), "source": [c.source for c in items],
            **{f"{stage}_ms": [ms] * n for stage, ms in stages.items()},
        }
        self.predlog.log(LOG_PREFIX + name, answer.model_version or 0, "primary", request_id,
                         dt.datetime.now(dt.UTC), stages.get("total", 0.0), inputs,
                         [c.score for c in items], n, answer.fallback)


class _Meters:
    """One recommender's metric children, looked up once: a labelled lookup costs more than the observation."""

    def __init__(self, metrics: Any, name: str):
        self.metrics = metrics
        self.name = name
        self.stages: dict[str, Any] = {}
        self.sources: dict[tuple[str, str], Any] = {}
        self.ok = metrics.child(metrics.recsys_requests, name, "ok")
        self.fallback = metrics.child(metrics.recsys_requests, name, "fallback")
        self.fallbacks = metrics.child(metrics.recsys_fallbacks, name)
        self.queued = metrics.child(metrics.recsys_queued, name)

    def record(self, answer: Any) -> None:
        """Observe one answer's stage latencies, source outcomes and outcome."""
        m = self.metrics
        for stage, ms in answer.stages_ms.items():
            child = self.stages.get(stage)
            if child is None:
                child = self.stages[stage] = m.child(m.recsys_stage_latency, self.name, stage)
            child.observe(ms / 1000)
        for source, report in answer.sources.items():
            key = (source, report.status)
            child = self.sources.get(key)
            if child is None:
                child = self.sources[key] = m.child(m.recsys_sources, self.name, source, report.status)
            child.inc()
        if answer.fallback:
            self.fallbacks.inc()
            self.fallback.inc()
        else:
            self.ok.inc()


def check_compute(concurrency: Any, on_loop: Any) -> None:
    """Refuse recommend_concurrency below 1, or above 1 with recommendations computed on the event loop."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"[serving] recommend_concurrency must be a whole number of at least 1, got {concurrency!r}")
    if on_loop and concurrency > 1:
        raise ConfigError(f"[serving] recommend_on_event_loop computes one recommendation at a time, but "
                          f"recommend_concurrency is {concurrency}; set it to 1 or recommend_on_event_loop = false")


def _request(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ValidationError('the body must be a JSON object such as {"user": 42, "n": 10}')
    unknown = sorted(set(payload) - {"user", "n", "context", "recent", "exclude"})
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r}; the body takes user, n, context, recent and exclude")
    context = payload.get("context") or {}
    if not isinstance(context, dict):
        raise ValidationError("context must be a JSON object of feature values")
    for field in ("recent", "exclude"):
        value = payload.get(field)
        if value is not None and not isinstance(value, list):
            raise ValidationError(f"{field} must be a list of item ids")
    return {"user": payload.get("user"), "n": payload.get("n"), "context": context, "recent": payload.get("recent"),
            "exclude": payload.get("exclude") or []}


_HEADERS = (b"authorization", b"content-length", b"x-request-id")


class RecommendRoute:
    """POST /v1/recommenders/{name}/recommend: the top N items for a user, with scores and sources.

    A bare ASGI app, as the predict route: every request takes this path, and Starlette's request,
    response and middleware wrappers would cost more than the server's own work around the recommender.
    """

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        state = scope["app"].state.serving
        headers = {key: value for key, value in scope["headers"] if key in _HEADERS}
        try:
            status, data, extra = 200, await _answer(state, scope, receive, headers), []
        except _Reply as reply:
            status, data, extra = reply.status, orjson.dumps(reply.body), reply.headers
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                                *extra]})
        await send({"type": "http.response.body", "body": data})


async def _answer(state: Any, scope: dict[str, Any], receive: Any, headers: dict[bytes, bytes]) -> bytes:
    """Check the caller and the body, compute the recommendation and return the reply's JSON."""
    from forgeml.serving.state import token_ok

    name = scope["path_params"]["name"]
    header = headers.get(b"authorization", b"").decode("latin-1")
    if state.gate is not None:
        client = scope.get("client")
        denied = state.gate.check(header, "models.predict", name, client[0] if client else "")
        if denied is not None:
            raise _Reply(denied[0], {"error": denied[1]}, headers=denied[2])
    elif not token_ok(state, header):
        raise _Reply(401, {"error": "missing or wrong bearer token"})
    host: RecommenderHost = state.recommenders
    rec = host.recommenders.get(name)
    if rec is None:
        raise _Reply(404, {"error": f"no recommender named {name!r} is served{did_you_mean(name, host.recommenders)}; "
                                    f"served: {', '.join(sorted(host.recommenders)) or 'none'}"})
    if not host.ready[name]:
        raise _Reply(503, {"error": f"recommender {name!r} is still loading: {host.errors.get(name, 'retry shortly')}"},
                     headers=[(b"retry-after", b"1")])
    body = await _read_body(receive, headers.get(b"content-length"), state.options.max_body_bytes)
    given_id = headers.get(b"x-request-id")
    request_id = given_id.decode("latin-1")[:128] if given_id else new_request_id()
    try:
        args = _request(orjson.loads(body))
    except orjson.JSONDecodeError as e:
        raise _Reply(400, {"error": f"request body is not valid JSON: {e}"}) from None
    except ValidationError as e:
        raise _Reply(422, {"error": str(e)}) from None
    interleaving = host.partner(name)
    start = time.perf_counter()
    try:
        if interleaving is not None:
            layout, other = interleaving
            first, second = await asyncio.gather(host.compute(rec, args), host.compute(other, args))
            took = (time.perf_counter() - start) * 1000
            host.observe(name, first, request_id, impressions=False)
            host.observe(other.name, second, request_id, impressions=False)
            merged, rows = merge_answers(layout, first, second, request_id)
            log_impressions(host.predlog, LOG_PREFIX + name, layout, first.user, rows, request_id, took)
            return _json({**merged, "request_id": request_id, "latency_ms": round(took, 3)})
        answer = await host.compute(rec, args)
    except (ValidationError, ConfigError) as e:
        raise _Reply(422, {"error": str(e)}) from None
    except ForgeError as e:
        log.warning("recommender %s: %s", name, e)
        raise _Reply(500, {"error": f"recommendation failed: {e}"}) from None
    except Exception as e:
        log.exception("recommender %s: recommendation failed", name)
        raise _Reply(500, {"error": f"recommendation failed: {type(e).__name__}: {e}"}) from None
    took = (time.perf_counter() - start) * 1000
    host.observe(name, answer, request_id)
    return _json({**answer.to_dict(), "request_id": request_id, "latency_ms": round(took, 3)})


def _json(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
