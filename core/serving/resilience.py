"""Serving through failures: circuit breakers, the fallback chain's settings and online-feature defaults."""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import ConfigError, ValidationError

# which link of the fallback chain answered; also the prediction log's "arm" for fallback answers
LINK_PRIMARY, LINK_BACKUP, LINK_CACHE, LINK_RULE, LINK_CONSTANT = "primary", "backup", "cache", "rule", "constant"
CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class DependencyDown(RuntimeError):
    """A guarded dependency failed, timed out or is not being called while its breaker is open."""


@dataclass
class FallbackConfig:
    """How one endpoint serves through failures: backup model, constant answer, feature defaults, breakers."""

    model: str = ""
    constant: float | None = None
    feature_defaults: dict[str, float] = field(default_factory=dict)
    lookup_deadline_ms: float = 0.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 10.0
    cache_ttl_s: float = 0.0
    cache_size: int = 100_000
    rule: str = ""
    budget_ms: float = 0.0
    max_queue: int = 0
    shed_latency_ms: float = 0.0
    breaker_latency_ms: float = 0.0
    breaker_quantile: float = 0.99
    breaker_window: int = 50
    training_defaults: bool = False

    def validate(self, endpoint: str) -> None:
        """Raise a one-line ConfigError when a value cannot work."""
        where = f"[serving.endpoints.{endpoint}.fallback]"
        for name in ("cache_ttl_s", "budget_ms", "shed_latency_ms", "breaker_latency_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}: {name} must be 0 (off) or positive, got {getattr(self, name)}")
        if self.max_queue < 0:
            raise ConfigError(f"{where}: max_queue must be 0 (no limit) or positive, got {self.max_queue}")
        if not 0 < self.breaker_quantile <= 1:
            raise ConfigError(f"{where}: breaker_quantile must be in (0, 1], got {self.breaker_quantile}")
        if self.breaker_window < 1 or self.cache_size < 1:
            raise ConfigError(f"{where}: breaker_window and cache_size must be at least 1")
        if self.rule:
            from forgeml.serving.links import Rule

            Rule(self.rule, where)
        if self.breaker_failures < 1:
            raise ConfigError(f"{where}: breaker_failures must be at least 1, got {self.breaker_failures}")
        if self.breaker_cooldown_s <= 0:
            raise ConfigError(f"{where}: breaker_cooldown_s must be positive, got {self.breaker_cooldown_s}")
        if self.lookup_deadline_ms < 0:
            raise ConfigError(f"{where}: lookup_deadline_ms must be 0 (none) or positive, "
                              f"got {self.lookup_deadline_ms}")

    @property
    def active(self) -> bool:
        """Whether a model failure has anywhere to fall back to."""
        return bool(self.model) or self.cheap

    @property
    def cheap(self) -> bool:
        """Whether a link that costs no model call (cache, rule, constant) may answer."""
        return self.cache_ttl_s > 0 or bool(self.rule) or self.constant is not None


class CircuitBreaker:
    """Closed until N consecutive failures or a slow p-quantile; then open until a cool-down lets one probe through.

    With ``latency_s`` set, the ``quantile`` of the last ``window`` good calls' durations above it also
    opens the breaker (a dependency that answers, but too slowly to be worth waiting for), and a
    half-open probe slower than it counts as failed.
    """

    def __init__(self, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[str], None] | None = None, latency_s: float = 0.0,
                 quantile: float = 0.99, window: int = 50):
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.on_change = on_change
        self.state = CLOSED
        self.consecutive = 0
        self.opened_at = 0.0
        self.latency_s = latency_s
        self.quantile = quantile
        self.durations: collections.deque[float] = collections.deque(maxlen=window)
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Whether to call the dependency now; after the cool-down exactly one caller gets the half-open probe."""
        with self._lock:
            if self.state == CLOSED:
                return True
            if self.state == OPEN and self.clock() - self.opened_at >= self.cooldown_s:
                self._set(HALF_OPEN)
                return True
            return False

    def success(self, seconds: float | None = None) -> None:
        """Record a good call taking ``seconds``: a half-open breaker closes unless the call was too slow."""
        if self.latency_s > 0 and seconds is not None and self._too_slow(seconds):
            self.failure(slow=True)
            return
        with self._lock:
            self.consecutive = 0
            if self.state != CLOSED:
                self._set(CLOSED)

    def _too_slow(self, seconds: float) -> bool:
        with self._lock:
            if self.state == HALF_OPEN:
                return seconds > self.latency_s
            self.durations.append(seconds)
            window = self.durations
            if len(window) < window.maxlen:  # type: ignore[operator]
                return False
            ranked = sorted(window)
            return ranked[min(int(self.quantile * len(ranked)), len(ranked) - 1)] > self.latency_s

    def quantile_s(self) -> float | None:
        """The configured quantile of the recent good calls' durations (None before any)."""
        with self._lock:
            ranked = sorted(self.durations)
        return ranked[min(int(self.quantile * len(ranked)), len(ranked) - 1)] if ranked else None

    def failure(self, slow: bool = False) -> None:
        """Record a failed call: the Nth in a row, a failed probe, or a too-slow quantile opens the breaker."""
        with self._lock:
            self.consecutive += 1
            if slow or self.state == HALF_OPEN or self.consecutive >= self.failures:
                self.opened_at = self.clock()
                self.durations.clear()  # the next window starts after the cool-down
                if self.state != OPEN:
                    self._set(OPEN)

    def _set(self, state: str) -> None:
        self.state = state
        if self.on_change is not None:
            self.on_change(state)


FeatureLookup = Callable[[Any, Sequence[dict[str, Any]]], dict[str, list[Any]]]


class GuardedLookup:
    """An online-feature lookup with a deadline and a breaker; on failure, the configured defaults stand in.

    Deadlined reads run on a few threads. A read that hangs keeps its thread, so at most that many
    reads can be outstanding: once every thread is held by a hung read, requests get the defaults at
    once (reason "saturated") instead of queueing behind reads that will not return.
    """

    threads = 4

    def __init__(self, lookup: FeatureLookup, config: FallbackConfig, breaker: CircuitBreaker,
                 on_default: Callable[[str], None] | None = None,
                 defaults: Callable[[Any], dict[str, float]] | None = None):
        self.lookup = lookup
        self.config = config
        self.breaker = breaker
        self.on_default = on_default
        # per model version: the configured defaults over the training statistics it was registered with
        self.defaults_for = defaults or (lambda served: config.feature_defaults)
        self._deadlined = config.lookup_deadline_ms > 0 or config.budget_ms > 0
        self._pool = (concurrent.futures.ThreadPoolExecutor(self.threads, "forgeml-lookup")
                      if self._deadlined else None)
        self._free = threading.BoundedSemaphore(self.threads)

    def __call__(self, served: Any, rows: Sequence[dict[str, Any]],
                 deadline: float | None = None) -> tuple[dict[str, list[Any]], list[str]]:
        """Return the features and the names filled from defaults (empty when the store answered).

        ``deadline`` is the request's (a ``time.perf_counter()`` instant): the read gives up at the
        earlier of it and the lookup deadline.
        """
        if not self.breaker.allow():
            return self._defaults(served, rows, "open")
        started = time.perf_counter()
        try:
            features = self._call(served, rows, self._timeout(started, deadline))
        except (ValidationError, ValueError, TypeError):
            raise  # the request's keys do not fit the views: the caller's error, not the store's
        except _Saturated as e:
            return self._defaults(served, rows, "saturated", e)
        except Exception as e:
            self.breaker.failure()
            reason = "timeout" if isinstance(e, concurrent.futures.TimeoutError) else "error"
            return self._defaults(served, rows, reason, e)
        self.breaker.success(time.perf_counter() - started)
        return features, []

    def _timeout(self, started: float, deadline: float | None) -> float | None:
        limits = []
        if self.config.lookup_deadline_ms > 0:
            limits.append(self.config.lookup_deadline_ms / 1000.0)
        if deadline is not None:
            limits.append(max(deadline - started, 0.0))
        return min(limits) if limits else None

    def _call(self, served: Any, rows: Sequence[dict[str, Any]], timeout: float | None) -> dict[str, list[Any]]:
        if self._pool is None:
            return self.lookup(served, rows)
        if not self._free.acquire(blocking=False):
            raise _Saturated(f"all {self.threads} lookup threads are held by reads that have not returned")
        try:
            future = self._pool.submit(self.lookup, served, rows)
        except BaseException:
            self._free.release()
            raise
        future.add_done_callback(lambda _: self._free.release())
        # a hung store keeps its thread, not the request: the answer goes on with defaults
        return future.result(timeout=timeout)

    def _defaults(self, served: Any, rows: Sequence[dict[str, Any]], reason: str,
                  error: Exception | None = None) -> tuple[dict[str, list[Any]], list[str]]:
        names = list(served.feature_columns)
        defaults = self.defaults_for(served)
        missing = [n for n in names if n not in defaults]
        if missing:
            cause = f"{type(error).__name__}: {error}" if error is not None else "its circuit breaker is open"
            raise DependencyDown(f"online store unavailable ({cause}) and no default for "
                                 f"{', '.join(missing)}; set feature_defaults in the endpoint's fallback table")
        if self.on_default is not None:
            self.on_default(reason)
        n = len(rows)
        return {name: [defaults[name]] * n for name in names}, names

    def close(self) -> None:
        """Stop the lookup threads (a hung lookup is abandoned)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


class _Saturated(RuntimeError):
    """Every lookup thread is held by a read that has not returned."""
