"""Traffic policies per endpoint: shadow copies, sticky A/B splits and canary ramps with guardrails."""

from __future__ import annotations

import collections
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import ConfigError

PRIMARY, SHADOW, ARM_A, ARM_B, CANARY = "primary", "shadow", "a", "b", "canary"


def bucket(endpoint: str, key: str) -> float:
    """Map a request key to a stable number in [0, 1): the same key always lands in the same arm."""
    digest = hashlib.blake2b(f"{endpoint}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 18446744073709551616.0


@dataclass
class CanaryConfig:
    """A canary ramp: the share of traffic at each step, how long a step lasts, and the guardrails."""

    steps: list[float] = field(default_factory=lambda: [0.05, 0.2, 1.0])
    interval_s: float = 300.0
    max_error_rate: float = 0.05
    max_p99_ms: float = 250.0
    min_requests: int = 20
    window: int = 500


class CanaryRamp:
    """Moves a canary through its steps over time and rolls it back when a guardrail breaks.

    The clock is injectable so that a test can move time forward instead of sleeping.
    """

    def __init__(self, config: CanaryConfig, clock: Callable[[], float] = time.monotonic):
        steps = list(config.steps)
        if not steps or any(not 0.0 <= s <= 1.0 for s in steps):
            raise ConfigError(f"canary steps must be fractions between 0 and 1, got {steps}")
        if steps != sorted(steps):
            raise ConfigError(f"canary steps must grow, got {steps}")
        if config.interval_s <= 0:
            raise ConfigError(f"canary interval_s must be positive, got {config.interval_s}")
        self.config = config
        self.clock = clock
        self.started_at = clock()
        self.state = "ramping"
        self.reason = ""
        self._lock = threading.Lock()
        self._outcomes: collections.deque[tuple[bool, float]] = collections.deque(maxlen=config.window)
        self._errors = 0
        self._since_check = 0

    def step(self) -> int:
        """Return the index of the current step."""
        elapsed = self.clock() - self.started_at
        return min(int(elapsed // self.config.interval_s), len(self.config.steps) - 1)

    def fraction(self) -> float:
        """Return the share of traffic the canary gets now (0 after a rollback)."""
        if self.state == "rolled_back":
            return 0.0
        i = self.step()
        if i == len(self.config.steps) - 1 and self.config.steps[i] >= 1.0 and self.state == "ramping":
            self.state = "promoted"
        return self.config.steps[i]

    def record(self, ok: bool, latency_ms: float) -> bool:
        """Record one canary outcome; return True when this outcome rolled the canary back."""
        with self._lock:
            if self.state == "rolled_back":
                return False
            if len(self._outcomes) == self._outcomes.maxlen and not self._outcomes[0][0]:
                self._errors -= 1
            self._outcomes.append((ok, latency_ms))
            if not ok:
                self._errors += 1
            self._since_check += 1
            n = len(self._outcomes)
            if n < self.config.min_requests:
                return False
            error_rate = self._errors / n
            if error_rate > self.config.max_error_rate:
                return self._roll_back(f"error rate {error_rate:.1%} > {self.config.max_error_rate:.1%} "
                                       f"over the last {n} canary requests")
            # the p99 needs a sort: do it every few outcomes, not on each
            if not ok or self._since_check >= 8:
                self._since_check = 0
                p99 = percentile([lat for _, lat in self._outcomes], 99)
                if p99 > self.config.max_p99_ms:
                    return self._roll_back(f"p99 latency {p99:.1f} ms > {self.config.max_p99_ms:g} ms "
                                           f"over the last {n} canary requests")
            return False

    def restart(self) -> None:
        """Start the ramp over from its first step with no outcomes: a new canary version arrived."""
        with self._lock:
            self.started_at = self.clock()
            self.state = "ramping"
            self.reason = ""
            self._outcomes.clear()
            self._errors = 0
            self._since_check = 0

    def _roll_back(self, reason: str) -> bool:
        self.state = "rolled_back"
        self.reason = reason
        return True

    def describe(self) -> dict[str, Any]:
        """Return the ramp's state for GET /v1/models."""
        fraction = self.fraction()
        return {"state": self.state, "fraction": fraction, "step": self.step(), "steps": self.config.steps,
                "reason": self.reason, "observed": len(self._outcomes)}


def percentile(values: Sequence[float], q: float) -> float:
    """Return the q-th percentile of values by the nearest-rank method (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 100)) - 1))
    return ordered[rank]


@dataclass
class TrafficPolicy:
    """Which arms an endpoint has and how a request is routed among them."""

    endpoint: str
    b_fraction: float = 0.0
    has_b: bool = False
    has_shadow: bool = False
    canary: CanaryRamp | None = None

    def __post_init__(self) -> None:
        if self.has_b and self.canary is not None:
            raise ConfigError(f"endpoint {self.endpoint!r}: choose an A/B split or a canary, not both")
        if not 0.0 <= self.b_fraction <= 1.0:
            raise ConfigError(f"endpoint {self.endpoint!r}: ab_fraction must be between 0 and 1, "
                              f"got {self.b_fraction}")

    def choose(self, key: str) -> str:
        """Return the arm that serves a request with this routing key."""
        if self.has_b:
            return ARM_B if bucket(self.endpoint, key) < self.b_fraction else ARM_A
        if self.canary is not None:
            fraction = self.canary.fraction()
            if fraction > 0 and bucket(self.endpoint, key) < fraction:
                return CANARY
        return PRIMARY

    def describe(self) -> dict[str, Any]:
        """Return the policy for GET /v1/models."""
        out: dict[str, Any] = {"shadow": self.has_shadow}
        if self.has_b:
            out["ab"] = {"b_fraction": self.b_fraction}
        if self.canary is not None:
            out["canary"] = self.canary.describe()
        return out
