"""The fallback chain of an endpoint: primary model, then backup model, then a constant, behind a breaker."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from forgeml.serving.resilience import LINK_BACKUP, LINK_CONSTANT, STATE_VALUE, CircuitBreaker
from forgeml.serving.signature import SchemaMismatch
from forgeml.serving.slot import ModelRejectedInput

log = logging.getLogger("forgeml.serving")


class FallbackChain:
    """Endpoint behaviour for failures: which link answers a request, and how that answer is counted and logged."""

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

    def _breaker(self, dependency: str, clock: Callable[[], float]) -> CircuitBreaker:
        fb = self.config.fallback
        gauge = self.metrics.circuit_state.labels(self.name, dependency)
        gauge.set(0)
        return CircuitBreaker(fb.breaker_failures, fb.breaker_cooldown_s, clock,
                              lambda state: gauge.set(STATE_VALUE[state]))

    def _defaults_used(self, reason: str) -> None:
        self.metrics.child(self.metrics.feature_defaults, self.name, reason).inc()

    async def serve_chain(self, payload: dict[str, Any], request_id: str) -> dict[str, Any]:
        """Serve one request from the first link of the fallback chain that answers."""
        started = time.perf_counter()
        if not self.config.fallback.active:
            return await self._predict(payload, request_id, started)
        error: Exception | None = None
        if self.model_breaker.allow():
            try:
                reply = await self._predict(payload, request_id, started)
            except (SchemaMismatch, ModelRejectedInput):
                self.model_breaker.success()  # the request was wrong, not the model: no fallback hides that
                raise
            except Exception as e:
                self.model_breaker.failure()
                error = e
            else:
                self.model_breaker.success()
                return reply
        return await self._fallback(payload, request_id, started, error)

    async def _fallback(self, payload: dict[str, Any], request_id: str, started: float,
                        error: Exception | None) -> dict[str, Any]:
        """Answer from the backup model, else the constant; re-raise the primary's error when neither can."""
        fb = self.config.fallback
        reason = "breaker_open" if error is None else type(error).__name__
        slot = self.slots.get(LINK_BACKUP)
        if slot is not None and slot.served is not None:
            try:
                result = await slot.batcher.submit(self.build_item(slot.served, payload))
            except Exception as e:  # the next link answers; the log says why this one did not
                log.warning("%s: backup model %s failed too: %s", self.name, fb.model, e)
                self._count(LINK_BACKUP, slot.served.version, started, "error", e)
            else:
                return self._answer(LINK_BACKUP, result.version, result.predictions, result.inputs, request_id,
                                    started, reason, result.defaulted)
        if fb.constant is None:
            if error is None:
                raise RuntimeError(f"endpoint {self.name!r}: model circuit breaker is open and no fallback answered")
            raise error
        n = row_count(payload)
        return self._answer(LINK_CONSTANT, 0, [fb.constant] * n, {}, request_id, started, reason, [])

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
