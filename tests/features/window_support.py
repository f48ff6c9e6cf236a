"""A brute-force model of window aggregations, and event builders, shared by the window tests."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

from forgeml.features import Aggregation

T0 = datetime(2024, 6, 1, tzinfo=UTC)
US = 1_000_000

AGGREGATIONS = [
    Aggregation("count", windows=["10m", "1h"]),
    Aggregation("sum", "amount", ["10m", "1h"]),
    Aggregation("mean", "amount", ["10m", "7d"]),
    Aggregation("stddev", "amount", ["1h"]),
    Aggregation("min", "amount", ["10m"]),
    Aggregation("max", "amount", ["30d"]),
    Aggregation("count_distinct", "merchant", ["1h"], dtype="string"),
    Aggregation("approx_count_distinct", "merchant", ["10m", "1h"], dtype="string"),
    Aggregation("approx_count_distinct", "amount", ["1h"], lg_k=10),
    Aggregation("last_n", "merchant", ["1h"], dtype="string", n=3),
    Aggregation("first", "amount", ["10m"]),
    Aggregation("last", "amount", ["1h"]),
]


def micros(t: datetime) -> int:
    """Return a datetime as epoch microseconds."""
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def expected(events: list[dict[str, Any]], key: Any, t_us: int, feature: Any) -> Any:
    """Compute one window feature for one key at t_us by scanning every event (the definition, slowly)."""
    agg = feature.aggregation
    edge = t_us - feature.window_us
    start = edge - edge % feature.hop_us
    inside = [e for e in events if e["card_id"] == key and start <= micros(e["event_timestamp"]) <= t_us]
    fn = agg.function
    if fn == "count":
        return len(inside)
    pairs = sorted((micros(e["event_timestamp"]), e[agg.column]) for e in inside if e[agg.column] is not None)
    values = [v for _, v in pairs]
    if fn in ("count_distinct", "approx_count_distinct"):  # a sketch counts a few values exactly
        return len(set(values))
    if fn == "last_n":
        return [v for _, v in reversed(pairs)][:agg.n]
    if not values:
        return None
    return {"sum": lambda: float(math.fsum(values)), "mean": lambda: statistics.fmean(values),
            "stddev": lambda: statistics.stdev(values) if len(values) > 1 else None,
            "min": lambda: min(values), "max": lambda: max(values),
            "first": lambda: pairs[0][1], "last": lambda: pairs[-1][1]}[fn]()


def same(a: Any, b: Any) -> bool:
    """Whether two feature values agree (floats to 1e-9 relative, NaN-free)."""
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
            return (a is None or (isinstance(a, float) and math.isnan(a))) and (
                b is None or (isinstance(b, float) and math.isnan(b)))
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if hasattr(a, "tolist"):
        a = a.tolist()
    if hasattr(b, "tolist"):
        b = b.tolist()
    return a == b


def event_table(events: list[dict[str, Any]]) -> Any:
    """Return events as an Arrow table with a UTC timestamp column."""
    import pyarrow as pa

    return pa.table({"card_id": pa.array([e["card_id"] for e in events], pa.int64()),
                     "event_timestamp": pa.array([e["event_timestamp"] for e in events], pa.timestamp("us", tz="UTC")),
                     "amount": pa.array([e["amount"] for e in events], pa.float64()),
                     "merchant": pa.array([e["merchant"] for e in events], pa.string())})
