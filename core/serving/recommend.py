"""POST /v1/recommenders/{name}/recommend: the recommenders of [serving.recommenders] on the model server.

Each request runs its recommender in a thread (retrieval, one batched feature lookup, ranking,
rules); the reply lists the top items with their scores and sources. While an interleaving
experiment runs on a recommender, its requests run both rankers and return their team-draft merge
(``forgeml.serving.interleaved``). Per-stage latency goes to the
metrics and, with every shown item as an impression, to the prediction log under
``model=recommender.NAME``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from forgeml.errors import ConfigError, ForgeError, ValidationError, did_you_mean
from forgeml.serving.endpoint import new_request_id
from forgeml.serving.interleaved import InterleavingLayouts, log_impressions, merge_answers

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

    def __init__(self, tables: Mapping[str, Any], workspace: Any, metrics: Any, predlog: Any):
        from forgeml.recsys import Recommender

        self.recommenders = {name: Recommender(name, table, workspace) for name, table in tables.items()}
        self.metrics = metrics
        self.predlog = predlog
        self.ready: dict[str, bool] = dict.fromkeys(self.recommenders, False)
        self.errors: dict[str, str] = {}
        self.layouts = InterleavingLayouts(workspace, LOG_PREFIX)

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
        """Stop every recommender's threads."""
        for rec in self.recommenders.values():
            rec.close()

    def observe(self, name: str, answer: Any, request_id: str, impressions: bool = True) -> None:
        """Record one answer's stage latencies, source outcomes and (unless merged elsewhere) impressions."""
        m = self.metrics
        for stage, ms in answer.stages_ms.items():
            m.child(m.recsys_stage_latency, name, stage).observe(ms / 1000)
        for source, report in answer.sources.items():
            m.child(m.recsys_sources, name, source, report.status).inc()
        if answer.fallback:
            m.child(m.recsys_fallbacks, name).inc()
        m.child(m.recsys_requests, name, "fallback" if answer.fallback else "ok").inc()
        if self.predlog is None or not answer.items or not impressions:
            return
        n = len(answer.items)
        inputs: dict[str, list[Any]] = {
            "user": [str(answer.user)] * n, "item": [str(c.item) for c in answer.items],
            "position": list(range(1, n + 1)), "source": [c.source for c in answer.items],
            **{f"{stage}_ms": [ms] * n for stage, ms in answer.stages_ms.items()},
        }
        self.predlog.log(LOG_PREFIX + name, answer.model_version or 0, "primary", request_id,
                         dt.datetime.now(dt.UTC), answer.stages_ms.get("total", 0.0), inputs,
                         [c.score for c in answer.items], n, answer.fallback)


def _reply(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status, media_type="application/json")


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


async def recommend(request: Request) -> Response:
    """POST /v1/recommenders/{name}/recommend: the top N items for a user, with scores and sources."""
    from forgeml.serving.state import token_ok

    state = request.app.state.serving
    name = request.path_params["name"]
    header = request.headers.get("authorization", "")
    if state.gate is not None:
        denied = state.gate.check(header, "models.predict", name, request.client.host if request.client else "")
        if denied is not None:
            return _reply({"error": denied[1]}, denied[0])
    elif not token_ok(state, header):
        return _reply({"error": "missing or wrong bearer token"}, 401)
    host: RecommenderHost = state.recommenders
    rec = host.recommenders.get(name)
    if rec is None:
        return _reply({"error": f"no recommender named {name!r} is served{did_you_mean(name, host.recommenders)}; "
                                f"served: {', '.join(sorted(host.recommenders)) or 'none'}"}, 404)
    if not host.ready[name]:
        return _reply({"error": f"recommender {name!r} is still loading: {host.errors.get(name, 'retry shortly')}"},
                      503)
    body = await request.body()
    if len(body) > state.options.max_body_bytes:
        return _reply({"error": f"request body exceeds the {state.options.max_body_bytes}-byte limit"}, 413)
    request_id = request.headers.get("x-request-id", "")[:128] or new_request_id()
    interleaving = host.partner(name)
    try:
        args = _request(orjson.loads(body))
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        if interleaving is not None:
            layout, other = interleaving
            first, second = await asyncio.gather(loop.run_in_executor(None, lambda: rec.recommend(**args)),
                                                 loop.run_in_executor(None, lambda: other.recommend(**args)))
            took = (time.perf_counter() - start) * 1000
            host.observe(name, first, request_id, impressions=False)
            host.observe(other.name, second, request_id, impressions=False)
            merged, rows = merge_answers(layout, first, second, request_id)
            log_impressions(host.predlog, LOG_PREFIX + name, layout, first.user, rows, request_id, took)
            return _reply({**merged, "request_id": request_id, "latency_ms": round(took, 3)})
        answer = await loop.run_in_executor(None, lambda: rec.recommend(**args))
        took = (time.perf_counter() - start) * 1000
    except orjson.JSONDecodeError as e:
        return _reply({"error": f"request body is not valid JSON: {e}"}, 400)
    except (ValidationError, ConfigError) as e:
        return _reply({"error": str(e)}, 422)
    except ForgeError as e:
        log.warning("recommender %s: %s", name, e)
        return _reply({"error": f"recommendation failed: {e}"}, 500)
    host.observe(name, answer, request_id)
    return _reply({**answer.to_dict(), "request_id": request_id, "latency_ms": round(took, 3)})
