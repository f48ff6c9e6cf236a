"""Serving through failures: circuit breakers, the fallback chain's settings and online-feature defaults."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import ConfigError, ValidationError

# which link of the fallback chain answered; also the prediction log's "arm" for fallback answers
LINK_PRIMARY, LINK_BACKUP, LINK_CONSTANT = "primary", "backup", "constant"
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

    def validate(self, endpoint: str) -> None:
        """Raise a one-line ConfigError when a value cannot work."""
        where = f"[serving.endpoints.{endpoint}.fallback]"
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
        return bool(self.model) or self.constant is not None


class CircuitBreaker:
    """Closed until N consecutive failures; then open (calls skipped) until a cool-down lets one probe through."""

    def __init__(self, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[str], None] | None = None):
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.on_change = on_change
        self.state = CLOSED
        self.consecutive = 0
        self.opened_at = 0.0
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

    def success(self) -> None:
        """Record a good call: a half-open breaker closes."""
        with self._lock:
            self.consecutive = 0
            if self.state != CLOSED:
                self._set(CLOSED)

    def failure(self) -> None:
        """Record a failed call: the Nth in a row, or a failed probe, opens the breaker."""
        with self._lock:
            self.consecutive += 1
            if self.state == HALF_OPEN or self.consecutive >= self.failures:
                self.opened_at = self.clock()
                if self.state != OPEN:
                    self._set(OPEN)

    def _set(self, state: str) -> None:
        self.state = state
        if self.on_change is not None:
            self.on_change(state)


FeatureLookup = Callable[[Any, Sequence[dict[str, Any]]], dict[str, list[Any]]]


class GuardedLookup:
    """An online-feature lookup with a deadline and a breaker; on failure, the configured defaults stand in."""

    def __init__(self, lookup: FeatureLookup, config: FallbackConfig, breaker: CircuitBreaker,
                 on_default: Callable[[str], None] | None = None):
        self.lookup = lookup
        self.config = config
        self.breaker = breaker
        self.on_default = on_default
        self._pool = (concurrent.futures.ThreadPoolExecutor(4, "forgeml-lookup")
                      if config.lookup_deadline_ms > 0 else None)

    def __call__(self, served: Any, rows: Sequence[dict[str, Any]]) -> tuple[dict[str, list[Any]], list[str]]:
        """Return the features and the names filled from defaults (empty when the store answered)."""
        if not self.breaker.allow():
            return self._defaults(served, rows, "open")
        try:
            features = self._call(served, rows)
        except (ValidationError, ValueError, TypeError):
            raise  # the request's keys do not fit the views: the caller's error, not the store's
        except Exception as e:
            self.breaker.failure()
            reason = "timeout" if isinstance(e, concurrent.futures.TimeoutError) else "error"
            return self._defaults(served, rows, reason, e)
        self.breaker.success()
        return features, []

    def _call(self, served: Any, rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
        if self._pool is None:
            return self.lookup(served, rows)
        future = self._pool.submit(self.lookup, served, rows)
        # a hung store keeps its thread, not the request: the answer goes on with defaults
        return future.result(timeout=self.config.lookup_deadline_ms / 1000.0)

    def _defaults(self, served: Any, rows: Sequence[dict[str, Any]], reason: str,
                  error: Exception | None = None) -> tuple[dict[str, list[Any]], list[str]]:
        names = list(served.feature_columns)
        missing = [n for n in names if n not in self.config.feature_defaults]
        if missing:
            cause = f"{type(error).__name__}: {error}" if error is not None else "its circuit breaker is open"
            raise DependencyDown(f"online store unavailable ({cause}) and no default for "
                                 f"{', '.join(missing)}; set feature_defaults in the endpoint's fallback table")
        if self.on_default is not None:
            self.on_default(reason)
        n = len(rows)
        return {name: [self.config.feature_defaults[name]] * n for name in names}, names

    def close(self) -> None:
        """Stop the lookup threads (a hung lookup is abandoned)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
