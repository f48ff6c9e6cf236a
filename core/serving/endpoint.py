"""One served endpoint: its model arms, the predict path through batching, traffic and the log, hot swap."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from forgeml.serving.batching import BatchingConfig, BatchItem
from forgeml.serving.experiment_arms import ExperimentArms
from forgeml.serving.explanations import requested_top_k
from forgeml.serving.fallback import FallbackChain, mark_defaults, row_count
from forgeml.serving.metrics import ServingMetrics
from forgeml.serving.predlog import PredictionLogger
from forgeml.serving.pressure import DEADLINE
from forgeml.serving.resilience import (
    LINK_BACKUP,
    LINK_PRIMARY,
    FallbackConfig,
    GuardedLookup,
)
from forgeml.serving.signature import ColumnSpec, SchemaMismatch, check_value, rows_to_columns
from forgeml.serving.slot import FeatureLookup, ModelSlot
from forgeml.serving.source import ModelSource, ServedModel
from forgeml.serving.traffic import (
    ARM_A,
    ARM_B,
    CANARY,
    PRIMARY,
    SHADOW,
    CanaryConfig,
    CanaryRamp,
    TrafficPolicy,
)

log = logging.getLogger("forgeml.serving")

# request ids: a random per-process prefix plus a counter, unique without a uuid4 per request
_ID_PREFIX = uuid.uuid4().hex[:12]
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """Return a request id unique across processes (random prefix) and within one (counter)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"

@dataclass
class EndpointConfig:
    """What one endpoint serves and how: its primary model URI, optional challengers, batching."""

    name: str
    model: str
    shadow: str = ""
    ab_model: str = ""
    ab_fraction: float = 0.5
    key_field: str = ""
    canary_model: str = ""
    canary: CanaryConfig = field(default_factory=CanaryConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    threads: int = 4
    fallback: FallbackConfig = field(default_factory=FallbackConfig)
    max_rows: int = 10_000  # most rows in one request (0: no limit)


class Endpoint(FallbackChain, ExperimentArms):
    """A named endpoint: traffic policy over model slots, the request path and the hot-swap poller."""

    def __init__(self, config: EndpointConfig, source: ModelSource, metrics: ServingMetrics,
                 predlog: PredictionLogger | None, lookup: FeatureLookup | None,
                 clock: Callable[[], float] = time.monotonic, device: str | None = None,
                 log_explanations: bool = False):
        self.config = config
        self.log_explanations = log_explanations and predlog is not None
        self.name = config.name
        self.metrics = metrics
        self.predlog = predlog
        self.slots: dict[str, ModelSlot] = {}
        fb = config.fallback
        if fb.budget_ms > 0:  # a model running on the event loop could not be cut off at the budget
            config.batching = dataclasses.replace(config.batching, inline_max_ms=0.0)
        self.model_breaker = self._breaker("model", clock)
        self.store_breaker = self._breaker("online_store", clock)
        self._setup_links(clock)
        self.guarded: GuardedLookup | None = None
        if lookup is not None:
            self.guarded = lookup = GuardedLookup(lookup, fb, self.store_breaker, self._defaults_used,
                                                  self._feature_defaults)

        def slot(arm: str, uri: str) -> ModelSlot:
            return ModelSlot(config.name, arm, uri, config, source, metrics, lookup, device)

        has_b = bool(config.ab_model)
        self.slots[ARM_A if has_b else PRIMARY] = slot(ARM_A if has_b else PRIMARY, config.model)
        if has_b:
            self.slots[ARM_B] = slot(ARM_B, config.ab_model)
        ramp = None
        if config.canary_model:
            self.slots[CANARY] = slot(CANARY, config.canary_model)
            ramp = CanaryRamp(config.canary, clock)
        if config.shadow:
            self.slots[SHADOW] = slot(SHADOW, config.shadow)
        if fb.model:  # loaded and hot-swapped like any arm, but only ever asked when the primary fails
            self.slots[LINK_BACKUP] = slot(LINK_BACKUP, fb.model)
        self.policy = TrafficPolicy(config.name, config.ab_fraction if has_b else 0.0, has_b,
                                    bool(config.shadow), ramp)
        self.primary_arm = ARM_A if has_b else PRIMARY
        self._background: set[asyncio.Task] = set()
        self.setup_experiment(slot)

    @property
    def ready(self) -> bool:
        """Whether every arm has a loaded, warmed model."""
        return all(s.served is not None for s in self.slots.values())

    @property
    def primary(self) -> ServedModel | None:
        """The primary arm's current model."""
        return self.slots[self.primary_arm].served

    # ------------------------------------------------------------ request path
    def routing_key(self, payload: dict[str, Any], request_id: str) -> str:
        """Return the key hashed for A/B and canary: explicit, a configured field, the first entity key."""
        key = payload.get("key")
        if isinstance(key, str | int) and not isinstance(key, bool):
            return str(key)
        first = None
        for container in ("entities", "rows"):
            rows = payload.get(container)
            if isinstance(rows, list) and rows and isinstance(rows[0], dict):
                first = rows[0]
                break
        if first is not None:
            served = self.primary
            for field_name in ([self.config.key_field] if self.config.key_field else []) + (
                    served.entity_keys if served is not None else []):
                if field_name in first:
                    return str(first[field_name])
        return request_id

    def build_item(self, served: ServedModel, payload: dict[str, Any]) -> BatchItem:
        """Validate a request body against a model's signature and turn it into a batch item."""
        rows = payload.get("rows")
        entities = payload.get("entities")
        if (rows is None) == (entities is None):
            raise SchemaMismatch("body", 'send exactly one of "rows" (feature values) or "entities" (entity keys)')
        if rows is not None:
            columns = rows_to_columns(rows, served.signature.inputs, "rows")
            return BatchItem(columns, len(rows), deadline=DEADLINE.get())
        if not served.entity_keys or not served.feature_refs:
            raise SchemaMismatch("entities", f"model {served.name} v{served.version} has no feature views; "
                                             "send its inputs as rows")
        by_name = {c.name: c for c in served.signature.inputs}
        specs = [by_name.get(k, ColumnSpec(k, "any")) for k in served.entity_keys]
        specs += [by_name[n] for n in served.request_columns]
        columns = rows_to_columns(entities, specs, "entities", allow_extra=True)
        for k in served.entity_keys:
            for i, value in enumerate(columns[k]):
                if not isinstance(value, str | int) or isinstance(value, bool):
                    raise SchemaMismatch(f"entities[{i}].{k}", "an entity key must be a string or an integer")
                if k in by_name:
                    check_value(value, by_name[k].json_type, f"entities[{i}].{k}")
        n = len(entities)
        entity_rows = [{name: columns[name][i] for name in columns} for i in range(n)]
        return BatchItem(columns, n, entity_rows, deadline=DEADLINE.get())

    async def predict(self, payload: dict[str, Any], request_id: str | None = None,
                      budget_ms: float | None = None) -> dict[str, Any]:
        """Serve one request within its latency budget: the primary path, then the fallback chain when it fails."""
        return await self.serve_chain(payload, request_id or new_request_id(), budget_ms)

    async def _predict(self, payload: dict[str, Any], request_id: str, started: float) -> dict[str, Any]:
        """The primary path: route the request, predict through the batcher, log it, copy it to the shadow."""
        key = self.routing_key(payload, request_id)
        routed = self.route_experiment(key)
        arm, tags = routed if routed is not None else (self.policy.choose(key), {})
        if arm not in self.slots:  # the experiment's holdout without a baseline model: no model answers
            primary = self.primary
            if primary is None:
                raise RuntimeError(f"endpoint {self.name!r} has no model loaded yet")
            return self.holdout_answer(primary, self.build_item(primary, payload), request_id, started, tags)
        slot = self.slots[arm]
        served = slot.served or self.primary
        if served is None:
            raise RuntimeError(f"endpoint {self.name!r} has no model loaded yet")
        top_k = requested_top_k(payload)
        try:
            item = self.build_item(served, payload)
            result = await slot.batcher.submit(item)
        except SchemaMismatch as e:
            if arm not in (CANARY, ARM_B):
                raise
            # the challenger takes other inputs than the primary: when the primary accepts the request,
            # the mismatch is the challenger's, so it counts against it and the primary answers;
            # otherwise the request itself is wrong, and the caller hears so from the primary
            primary = self.slots[self.primary_arm].served
            assert primary is not None
            item = self.build_item(primary, payload)
            self._record_challenger(arm, served, started, e, payload, request_id)
            arm = self.primary_arm
            result = await self.slots[arm].batcher.submit(item)
        except Exception as e:
            if arm not in (CANARY, ARM_B):
                self._count(arm, served.version, started, str(type(e).__name__), e)
                raise
            # a challenger failing must not fail the caller: record it, then answer from the primary
            self._record_challenger(arm, served, started, e, payload, request_id)
            arm = self.primary_arm
            slot = self.slots[arm]
            served = slot.served
            assert served is not None
            item = self.build_item(served, payload)
            result = await slot.batcher.submit(item)
        explanations, logged_inputs = None, result.inputs
        if top_k is not None or self.log_explanations:
            explanations, logged_inputs = await self._explain(arm, result, top_k)
        latency_ms = (time.perf_counter() - started) * 1000.0
        self._count(arm, result.version, started, "ok")
        self.metrics.child(self.metrics.rows, self.name, str(result.version), arm).inc(len(result.predictions))
        if arm == CANARY and self.policy.canary is not None:
            self._canary_outcome(True, latency_ms)
        if self.predlog is not None:
            self.predlog.log(self.name, result.version, arm, request_id, dt.datetime.now(dt.UTC), latency_ms,
                             mark_defaults(logged_inputs, result.defaulted, len(result.predictions), tags),
                             result.predictions, len(result.predictions))
        if SHADOW in self.slots:
            task = asyncio.get_running_loop().create_task(self._shadow(payload, request_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        reply = {"model": self.name, "version": result.version, "arm": arm, "link": LINK_PRIMARY,
                 "request_id": request_id, "predictions": result.predictions}
        if result.defaulted:
            reply["feature_defaults"] = result.defaulted
        answered = self.slots[arm].served
        if answered is not None and answered.profile is not None:
            warnings = answered.profile.warnings(result.inputs, len(result.predictions),
                                                 "rows" if "rows" in payload else "entities")
            if warnings:
                reply["warnings"] = warnings
        if explanations is not None:
            reply["explanations"] = explanations
        return reply

    async def _explain(self, arm: str, result: Any, top_k: int | None) -> tuple[Any, dict[str, list[Any]]]:
        """Attribute a request's predictions off the event loop; return the reasons and the inputs to log."""
        from forgeml.serving.explanations import ATTRIBUTION_PREFIX, explain_columns, explains_inline

        slot = self.slots[arm]
        served = slot.served
        assert served is not None
        workspace = getattr(slot.source, "workspace", None)
        try:
            if explains_inline(served, len(result.predictions)):
                attributions = explain_columns(served, result.inputs, workspace)
            else:
                attributions = await asyncio.get_running_loop().run_in_executor(
                    None, explain_columns, served, result.inputs, workspace)
        except Exception as e:  # the model cannot be explained: the caller hears why; logging alone goes on
            if top_k is None:
                log.warning("%s: prediction not explained for the log: %s", self.name, e)
                return None, result.inputs
            raise SchemaMismatch("explain", f"model {served.name} v{served.version} cannot be explained: "
                                            f"{e}") from e
        logged = result.inputs
        if self.log_explanations or top_k is not None:
            logged = {**result.inputs, **attributions.columns(ATTRIBUTION_PREFIX)}
        return (attributions.explanations(top_k) if top_k is not None else None), logged

    def _count(self, arm: str, version: int, started: float, status: str, error: Exception | None = None) -> None:
        v = str(version)
        m = self.metrics
        m.child(m.requests, self.name, v, arm, status).inc()
        m.child(m.latency, self.name, v, arm).observe(time.perf_counter() - started)
        if error is not None:
            m.child(m.errors, self.name, v, type(error).__name__).inc()

    def _record_challenger(self, arm: str, served: ServedModel, started: float, error: Exception,
                           payload: dict[str, Any], request_id: str) -> None:
        latency_ms = (time.perf_counter() - started) * 1000.0
        self._count(arm, served.version, started, "error", error)
        if arm == CANARY:
            self._canary_outcome(False, latency_ms)
        if self.predlog is not None:
            self.predlog.log(self.name, served.version, arm, request_id, dt.datetime.now(dt.UTC), latency_ms,
                             {}, None, row_count(payload), f"{type(error).__name__}: {error}")

    def _canary_outcome(self, ok: bool, latency_ms: float) -> None:
        ramp = self.policy.canary
        assert ramp is not None
        if ramp.record(ok, latency_ms):
            self.metrics.canary_rollbacks.labels(self.name).inc()
            log.warning("%s: canary %s rolled back: %s", self.name, self.config.canary_model, ramp.reason)
        self.metrics.canary_fraction.labels(self.name).set(ramp.fraction())

    async def _shadow(self, payload: dict[str, Any], request_id: str) -> None:
        slot = self.slots[SHADOW]
        served = slot.served
        if served is None:
            return
        started = time.perf_counter()
        try:
            result = await slot.batcher.submit(self.build_item(served, payload))
        except Exception as e:  # the shadow's failure is logged, never returned
            self._count(SHADOW, served.version, started, "error", e)
            if self.predlog is not None:
                self.predlog.log(self.name, served.version, SHADOW, request_id, dt.datetime.now(dt.UTC),
                                 (time.perf_counter() - started) * 1000.0, {}, None, row_count(payload),
                                 f"{type(e).__name__}: {e}")
            return
        latency_ms = (time.perf_counter() - started) * 1000.0
        self._count(SHADOW, result.version, started, "ok")
        if self.predlog is not None:
            self.predlog.log(self.name, result.version, SHADOW, request_id, dt.datetime.now(dt.UTC), latency_ms,
                             result.inputs, result.predictions, len(result.predictions))

    # ------------------------------------------------------------ hot swap
    async def load_all(self) -> None:
        """Load and warm every arm (in threads), then install them."""
        loop = asyncio.get_running_loop()
        for slot in self.slots.values():
            served = await loop.run_in_executor(None, slot.load_and_warm)
            slot.install(served)

    async def poll_once(self) -> list[str]:
        """Check each arm's URI in the registry and swap in a new version; return what changed."""
        loop = asyncio.get_running_loop()
        changed = await self.refresh_experiment()
        for slot in list(self.slots.values()):
            try:
                version = await loop.run_in_executor(None, slot.source.version_of, slot.uri)
                if slot.served is not None and version == slot.served.version:
                    continue
                served = await loop.run_in_executor(None, slot.load_and_warm)
            except Exception as e:  # keep serving the loaded version; the next poll tries again
                slot.load_error = f"{type(e).__name__}: {e}"
                log.warning("%s/%s: cannot refresh %s: %s", self.name, slot.arm, slot.uri, slot.load_error)
                continue
            replaced = slot.served is not None
            slot.install(served)
            changed.append(f"{slot.arm}:v{served.version}")
            if replaced and slot.arm == CANARY and self.policy.canary is not None:
                # a new canary version earns its traffic afresh, even after the last one was rolled back
                self.policy.canary.restart()
                log.info("%s: new canary v%s, ramp restarted", self.name, served.version)
        return changed

    async def close(self) -> None:
        """Wait for shadow copies in flight and stop the batchers."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for slot in self.slots.values():
            await slot.batcher.close()
        if self.guarded is not None:
            self.guarded.close()

    def describe(self) -> dict[str, Any]:
        """Return the endpoint for GET /v1/models."""
        arms = {}
        for arm, slot in self.slots.items():
            s = slot.served
            arms[arm] = {"uri": slot.uri, "version": s.version if s else None, "flavor": s.flavor if s else None,
                         "ready": s is not None, "error": slot.load_error or None}
        primary = self.primary
        return {"name": self.name, "uri": self.config.model, "version": primary.version if primary else None,
                "ready": self.ready, "arms": arms, "traffic": self.policy.describe(),
                "entity_keys": primary.entity_keys if primary else [],
                "feature_views": primary.feature_refs if primary else [],
                "batching": {"enabled": self.config.batching.enabled,
                             "max_batch_size": self.config.batching.max_batch_size,
                             "max_delay_ms": self.config.batching.max_delay_ms,
                             "warm_ms": round(primary.warm_ms, 3) if primary else None},
                "resilience": self.describe_resilience()}

