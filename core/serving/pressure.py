"""Serving under pressure: per-request latency budgets and admission control (load shedding)."""

from __future__ import annotations

import collections
import contextvars
import threading
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")

# the current request's deadline (a time.perf_counter() instant), seen by the batch items it builds
DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("forgeml_deadline", default=None)

# the header a caller sends its remaining latency budget in (milliseconds)
BUDGET_HEADER = b"x-budget-ms"


class DeadlineExceeded(TimeoutError):
    """The request's latency budget ran out before a link of the chain answered."""


class Overloaded(RuntimeError):
    """The endpoint refused a request at admission (queue full or latency over target)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def budget_s(configured_ms: float, requested_ms: float | None) -> float | None:
    """The request's budget in seconds: the lower of the endpoint's and the caller's (None: no budget)."""
    given = [ms for ms in (configured_ms, requested_ms) if ms is not None and ms > 0]
    return min(given) / 1000.0 if given else None


def parse_budget(raw: bytes | None) -> float | None:
    """Read the X-Budget-Ms header; None when absent, ValueError when it is not a positive number."""
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"X-Budget-Ms must be a positive number of milliseconds, got {raw.decode('latin-1')!r}")
    return value


async def within(awaitable: Awaitable[T], deadline: float | None, now: float) -> T:
    """Await with the deadline (perf_counter instant) as a timeout; DeadlineExceeded when it passes."""
    import asyncio

    if deadline is None:
        return await awaitable
    remaining = deadline - now
    if remaining <= 0:
        if hasattr(awaitable, "close"):
            awaitable.close()  # type: ignore[union-attr]
        raise DeadlineExceeded("the latency budget was spent before this link was tried")
    try:
        return await asyncio.wait_for(awaitable, remaining)
    except TimeoutError:
        raise DeadlineExceeded(f"no answer within the {remaining * 1000:.0f} ms left of the budget") from None


class Admission:
    """Admission control for one endpoint: a queue limit and an AIMD concurrency limit on latency.

    ``max_queue`` caps the requests in flight (0: no cap). With ``target_ms`` set, the limit adapts:
    each answer slower than the target cuts it by a tenth (multiplicative decrease), each faster one
    raises it by 1/limit (additive increase), between 1 and ``max_queue`` (or 1024). Requests over the
    limit are refused at once, before they can queue and push everyone's latency up.
    """

    ceiling = 1024

    def __init__(self, max_queue: int = 0, target_ms: float = 0.0):
        self.max_queue = max_queue
        self.target_s = target_ms / 1000.0
        self.top = float(max_queue or self.ceiling)
        self.limit = self.top
        self.in_flight = 0
        self.recent: collections.deque[tuple[float, float]] = collections.deque(maxlen=4096)  # (done at, seconds)
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether any request can be refused."""
        return self.max_queue > 0 or self.target_s > 0

    def admit(self) -> str | None:
        """Take a place for a request; return why it is refused ("queue_full", "latency") or None."""
        with self._lock:
            if self.active and self.in_flight >= int(self.limit):
                if self.max_queue and self.in_flight >= self.max_queue:
                    return "queue_full"
                return "latency"
            self.in_flight += 1
            return None

    def done(self, seconds: float) -> None:
        """Give back a request's place, adapting the limit to how long it took."""
        with self._lock:
            self.in_flight -= 1
            self.recent.append((time.monotonic(), seconds))
            if self.target_s <= 0:
                return
            if seconds > self.target_s:
                self.limit = max(1.0, self.limit * 0.9)
            else:
                self.limit = min(self.top, self.limit + 1.0 / self.limit)

    def recent_seconds(self, window_s: float) -> list[float]:
        """Durations of the requests answered in the last ``window_s`` seconds."""
        since = time.monotonic() - window_s
        with self._lock:
            return [seconds for at, seconds in self.recent if at >= since]

    def describe(self) -> dict[str, Any]:
        """The admission state for /v1/models."""
        return {"in_flight": self.in_flight, "limit": int(self.limit) if self.active else None,
                "max_queue": self.max_queue or None, "target_ms": self.target_s * 1000.0 or None}
