"""The fallback chain of an endpoint: primary, backup model, cached prediction, rule, constant, behind breakers."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from forgeml.serving.links import PredictionCache, Rule, request_rows, row_keys
from forgeml.serving.pressure import DEADLINE, Admission, DeadlineExceeded, Overloaded, budget_s, within
from forgeml.serving.resilience import (
    LINK_BACKUP,
    LINK_CACHE,
    LINK_CONSTANT,
    LINK_PRIMARY,
    LINK_RULE,
    STATE_VALUE,
    CircuitBreaker,
)
from forgeml.serving.signature import SchemaMismatch
from forgeml.serving.slot import ModelRejectedInput

log = logging.getLogger("forgeml.serving")


class FallbackChain:
    """Endpoint behaviour for failures and pressure: which link answers a request, and how it is counted and logged.

    The chain is primary model -> backup model -> the entity's cached last prediction -> rule ->
    constant. A request over the latency budget goes down the chain; one refused at admission goes
    straight to the links that cost no model call (cache, rule, constant), else a 503.
    """

    # provided by Endpoint, which this class is mixed into
    name: str
    config: Any
    metrics: Any
    predlog: Any
    slots: dict[str, Any]
    model_breaker: CircuitBreaker
    build_item: Callable[..., Any]
    _count: Callable[..., None]
    _predict: Callable[..., Any]
    primary: Any

    def _setup_links(self, clock: Callable[[], float]) -> None:
        """Build the cache, rule and admission control the fallback table asks for."""
        fb = self.config.fallback
        self.cache = PredictionCache(fb.cache_ttl_s, fb.cache_size, clock) if fb.cache_ttl_s > 0 else None
        self.rule = Rule(fb.rule) if fb.rule else None
        self.admission = Admission(fb.max_queue, fb.shed_latency_ms)
        m = self.metrics
        m.in_flight.labels(self.name).set_function(lambda: self.admission.in_flight)
        if self.admission.active:
            m.admission_limit.labels(self.name).set_function(lambda: int(self.admission.limit))

    def _breaker(self, dependency: str, clock: Callable[[], float]) -> CircuitBreaker:
        fb = self.config.fallback
        gauge = self.metrics.circuit_state.labels(self.name, dependency)
        gauge.set(0)
        return CircuitBreaker(fb.breaker_failures, fb.breaker_cooldown_s, clock,
                              lambda state: gauge.set(STATE_VALUE[state]), fb.breaker_latency_ms / 1000.0,
                              fb.breaker_quantile, fb.breaker_window)

    def _feature_defaults(self, served: Any) -> dict[str, Any]:
        """Defaults for this model version: the configured ones over its training statistics (when asked for)."""
        fb = self.config.fallback
        if not fb.training_defaults:
            return fb.feature_defaults
        return {**getattr(served, "training_stats", {}), **fb.feature_defaults}

    def describe_resilience(self) -> dict[str, Any]:
        """The fallback links, breakers and admission state, for /v1/models."""
        fb = self.config.fallback
        links = [LINK_PRIMARY]
        for link, on in ((LINK_BACKUP, bool(fb.model)), (LINK_CACHE, self.cache is not None),
                         (LINK_RULE, self.rule is not None), (LINK_CONSTANT, fb.constant is not None)):
            if on:
                links.append(link)
        breakers = {"model": self.model_breaker.state}
        store = getattr(self, "store_breaker", None)
        if store is not None:
            breakers["online_store"] = store.state
        return {"links": links, "breakers": breakers, "admission": self.admission.describe(),
                "budget_ms": fb.budget_ms or None, "cached_entities": len(self.cache) if self.cache else 0}

    def _defaults_used(self, reason: str) -> None:
        self.metrics.child(self.metrics.feature_defaults, self.name, reason).inc()

    async def serve_chain(self, payload: dict[str, Any], request_id: str,
                          budget_ms: float | None = None) -> dict[str, Any]:
        """Serve one request from the first link of the fallback chain that answers, within its budget."""
        started = time.perf_counter()
        fb = self.config.fallback
        budget = budget_s(fb.budget_ms, budget_ms)
        deadline = started + budget if budget is not None else None
        refused = self.admission.admit()
        if refused is not None:
            self.metrics.child(self.metrics.shed, self.name, refused).inc()
            reply = self._cheap(payload, request_id, started, f"shed_{refused}")
            if reply is None:
                raise Overloaded(f"endpoint {self.name!r} is over its {'queue limit' if refused == 'queue_full' else 'latency target'}"
                                 f" ({self.admission.in_flight} requests in flight); retry shortly", refused)
            return reply
        token = DEADLINE.set(deadline)
        try:
            return await self._chain(payload, request_id, started, deadline)
        finally:
            DEADLINE.reset(token)
            self.admission.done(time.perf_counter() - started)

    async def _chain(self, payload: dict[str, Any], request_id: str, started: float,
                     deadline: float | None) -> dict[str, Any]:
        if not self.config.fallback.active:
            return await within(self._predict(payload, request_id, started), deadline, started)
        error: Exception | None = None
        if self.model_breaker.allow():
            try:
                reply = await within(self._predict(payload, request_id, started), deadline, started)
            except (SchemaMismatch, ModelRejectedInput):
                self.model_breaker.success()  # the request was wrong, not the model: no fallback hides that
                raise
            except Exception as e:
                self.model_breaker.failure()
                error = e
            else:
                self.model_breaker.success(time.perf_counter() - started)
                self._remember(payload, reply["version"], reply["predictions"])
                return reply
        return await self._fallback(payload, request_id, started, error, deadline)

    async def _fallback(self, payload: dict[str, Any], request_id: str, started: float,
                        error: Exception | None, deadline: float | None) -> dict[str, Any]:
        """Answer from the backup model, else a cheap link; re-raise the primary's error when none can."""
        fb = self.config.fallback
        reason = ("breaker_open" if error is None else "deadline" if isinstance(error, DeadlineExceeded)
                  else type(error).__name__)
        slot = self.slots.get(LINK_BACKUP)
        if slot is not None and slot.served is not None:
            try:
                # the backup gets a budget of its own: the primary may have spent the request's
                now = time.perf_counter()
                own = now + (deadline - started) if deadline is not None else None
                DEADLINE.set(own)
                result = await within(slot.batcher.submit(self.build_item(slot.served, payload)), own, now)
            except Exception as e:  # the next link answers; the log says why this one did not
                log.warning("%s: backup model %s failed too: %s", self.name, fb.model, e)
                self._count(LINK_BACKUP, slot.served.version, started, "error", e)
            else:
                self._remember(payload, result.version, result.predictions)
                return self._answer(LINK_BACKUP, result.version, result.predictions, result.inputs, request_id,
                                    started, reason, result.defaulted)
        reply = self._cheap(payload, request_id, started, reason)
        if reply is not None:
            return reply
        if error is None:
            raise RuntimeError(f"endpoint {self.name!r}: model circuit breaker is open and no fallback answered")
        raise error

    def _keys(self, payload: dict[str, Any]) -> list[str] | None:
        primary = self.primary
        return row_keys(payload, primary.entity_keys if primary is not None else [], self.config.key_field)

    def _remember(self, payload: dict[str, Any], version: int, predictions: list[Any]) -> None:
        if self.cache is not None:
            keys = self._keys(payload)
            if keys is not None and len(keys) == len(predictions):
                self.cache.put(keys, version, predictions)

    def _cheap(self, payload: dict[str, Any], request_id: str, started: float,
               reason: str) -> dict[str, Any] | None:
        """Answer from the cache, the rule or the constant, whichever first can; None when none can."""
        fb = self.config.fallback
        if self.cache is not None:
            keys = self._keys(payload)
            hit = self.cache.get(keys) if keys is not None else None
            if hit is not None:
                return self._answer(LINK_CACHE, hit[0], hit[1], {}, request_id, started, reason, [])
        if self.rule is not None:
            rows = request_rows(payload)
            try:
                values = self.rule.apply(rows)
            except ValueError as e:
                log.warning("%s: fallback rule could not answer: %s", self.name, e)
            else:
                if values:
                    return self._answer(LINK_RULE, 0, values, {}, request_id, started, reason, [])
        if fb.constant is not None:
            n = row_count(payload)
            return self._answer(LINK_CONSTANT, 0, [fb.constant] * n, {}, request_id, started, reason, [])
        return None

    def _answer(self, link: str, version: int, predictions: list[Any], inputs: dict[str, list[Any]],
                request_id: str, started: float, reason: str, defaulted: list[str]) -> dict[str, Any]:
        """Count, log and shape an answer given by a fallback link."""
        self.metrics.child(self.metrics.fallbacks, self.name, link, reason).inc()
        self._count(link, version, started, "ok")
        if self.predlog is not None:
            self.predlog.log(self.name, version, link, request_id, dt.datetime.now(dt.UTC),
                             (time.perf_counter() - started) * 1000.0, mark_defaults(inputs, defaulted, len(predictions)),
                             predictions, len(predictions))
        reply = {"model": self.name, "version": version, "arm": link, "link": link, "fallback_reason": reason,
                 "request_id": request_id, "predictions": predictions}
        if defaulted:
            reply["feature_defaults"] = defaulted
        return reply


def mark_defaults(inputs: dict[str, list[Any]], defaulted: list[str], n: int,
                  tags: dict[str, Any] | None = None) -> dict[str, list[Any]]:
    """Add the prediction log's _feature_defaults column naming the features that were defaults, and any tags."""
    if not defaulted and not tags:
        return inputs
    out = {**inputs, **{name: [value] * n for name, value in (tags or {}).items()}}
    if defaulted:
        out["_feature_defaults"] = [",".join(defaulted)] * n
    return out




def row_count(payload: dict[str, Any]) -> int:
    """Return how many rows a request body carries (1 when it cannot tell)."""
    for key in ("rows", "entities"):
        value = payload.get(key)
        if isinstance(value, list):
            return max(len(value), 1)
    return 1
