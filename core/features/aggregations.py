"""Window aggregations of a feature view: one definition that the offline SQL and the online tiles both follow.

A window of length W read at time t covers the events with event time in ``[start, t]`` where
``start = floor((t - W) / hop) * hop``: the end is exact (an event is visible the moment it is
applied) and the start is aligned to the window's hop, so the covered span is between W and
W + hop. Both paths use this rule, which is why an online value equals the offline value at the
same time. The hop of a window is the largest of 1s, 10s, 1m, 5m, 15m, 1h, 6h, 1d that is at
most W / 8 (at least 1s), so a read merges about 9 to 17 tiles per window, whatever its length.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from forgeml.errors import ValidationError

FUNCTIONS = ("count", "sum", "mean", "min", "max", "stddev", "count_distinct", "approx_count_distinct", "last_n",
             "first", "last")
NUMERIC = ("sum", "mean", "stddev")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
HOPS_S = (1, 10, 60, 300, 900, 3600, 21600, 86400)
WINDOW_RE = re.compile(r"^(\d+)([smhd])$")
US = 1_000_000


def parse_window(value: Any) -> int:
    """Return a window given as "10m", "1h", "7d", a timedelta or seconds, in whole seconds."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and WINDOW_RE.match(value.strip()):
        m = WINDOW_RE.match(value.strip())
        seconds = float(int(m.group(1)) * UNITS[m.group(2)])
    else:
        raise ValidationError(f"window {value!r} must be written like \"10m\", \"1h\", \"7d\" (s, m, h, d), "
                              f"or be a timedelta")
    if seconds < 1 or seconds != int(seconds):
        raise ValidationError(f"window {value!r} must be a whole number of seconds, at least 1s")
    return int(seconds)


def window_label(seconds: int) -> str:
    """Return the shortest exact label of a window ("600" -> "10m")."""
    for unit in ("d", "h", "m"):
        if seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"


def hop_for(window_s: int) -> int:
    """Return the hop (tile size) in seconds of a window: the largest standard step at most window / 8."""
    fitting = [h for h in HOPS_S if h * 8 <= window_s]
    return fitting[-1] if fitting else 1


@dataclass(frozen=True)
class Aggregation:
    """One aggregation of an event column over one or more sliding windows.

    ``function`` is one of count, sum, mean, min, max, stddev (sample), count_distinct (exact),
    approx_count_distinct (a HyperLogLog sketch of ``lg_k`` 4..21, default 12: about 1.04 / sqrt(2^lg_k)
    relative standard error, 1.6% at 12; see :mod:`forgeml.features.sketches`), last_n (the newest ``n`` non-null values, newest first), first and last (the oldest and newest
    non-null value; events at the same time are ordered by value). ``column`` is the event column
    (not needed by count, which counts events); ``dtype`` is that column's type. Each window gives
    one feature named ``{name}_{window}``, where ``name`` defaults to ``{column}_{function}``.
    """

    function: str
    column: str | None = None
    windows: Sequence[Any] = ("1h",)
    dtype: str = "float64"
    n: int = 0
    name: str = ""
    lg_k: int = 0

    def __post_init__(self) -> None:
        from forgeml.features.definitions import check_name, embedding_dim, normalize_dtype

        if self.function not in FUNCTIONS:
            from forgeml.errors import unknown_name

            raise ValidationError(str(unknown_name("aggregation function", str(self.function), FUNCTIONS)))
        if self.function != "count" and not self.column:
            raise ValidationError(f"aggregation {self.function!r} needs column= (the event column it reads)")
        if self.column is not None:
            check_name("aggregation column", self.column)
        dtype = normalize_dtype(self.dtype)
        if embedding_dim(dtype) is not None or dtype.startswith("list["):
            raise ValidationError(f"aggregation of {self.column!r}: column dtype must be a scalar, got {dtype}")
        if self.function in NUMERIC and dtype not in ("int32", "int64", "float32", "float64", "bool"):
            raise ValidationError(f"aggregation {self.function!r} of {self.column!r} needs a numeric column, "
                                  f"got {dtype}")
        object.__setattr__(self, "dtype", dtype)
        if self.function == "last_n":
            if not isinstance(self.n, int) or isinstance(self.n, bool) or not 1 <= self.n <= 1000:
                raise ValidationError(f"last_n of {self.column!r} needs n= between 1 and 1000, got {self.n!r}")
        elif self.n:
            raise ValidationError(f"n= is only for last_n, not {self.function!r}")
        self._check_lg_k()
        windows = [self.windows] if isinstance(self.windows, str | int | float | timedelta) else list(self.windows)
        if not windows:
            raise ValidationError(f"aggregation {self.base_name!r}: give at least one window")
        seconds = tuple(parse_window(w) for w in windows)
        if len(set(seconds)) != len(seconds):
            raise ValidationError(f"aggregation {self.base_name!r}: a window is listed twice")
        object.__setattr__(self, "windows", tuple(window_label(s) for s in seconds))
        if self.name:
            check_name("aggregation name", self.name)

    def _check_lg_k(self) -> None:
        from forgeml.features.sketches import DEFAULT_LG_K, FUNCTION, LG_K_RANGE

        if self.function != FUNCTION:
            if self.lg_k:
                raise ValidationError(f"lg_k= is only for {FUNCTION}, not {self.function!r}")
            return
        lg_k = self.lg_k or DEFAULT_LG_K
        lo, hi = LG_K_RANGE
        if not isinstance(lg_k, int) or isinstance(lg_k, bool) or not lo <= lg_k <= hi:
            raise ValidationError(f"{FUNCTION} of {self.column!r} needs lg_k= between {lo} and {hi}, got {lg_k!r}")
        object.__setattr__(self, "lg_k", lg_k)

    @property
    def base_name(self) -> str:
        """The feature name before the window suffix."""
        if self.name:
            return self.name
        if self.function == "count":
            return f"{self.column}_count" if self.column else "count"
        if self.function == "last_n":
            return f"{self.column}_last{self.n}"
        return f"{self.column}_{self.function}"

    @property
    def output_dtype(self) -> str:
        """The dtype of the features this aggregation produces."""
        if self.function in ("count", "count_distinct", "approx_count_distinct"):
            return "int64"
        if self.function in NUMERIC:
            return "float64"
        if self.function == "last_n":
            return f"list[{self.dtype}]"
        return self.dtype

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready description stored in the registry."""
        spec = {"function": self.function, "column": self.column, "windows": list(self.windows),
                "dtype": self.dtype, "n": self.n, "name": self.name}
        if self.lg_k:
            spec["lg_k"] = self.lg_k
        return spec

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Aggregation:
        """Rebuild an aggregation from its registry description."""
        return cls(spec["function"], spec["column"], tuple(spec["windows"]), spec["dtype"], spec["n"], spec["name"],
                   spec.get("lg_k", 0))


@dataclass(frozen=True)
class WindowFeature:
    """One feature of a window view: an aggregation (by index) over one window, with its hop."""

    name: str
    aggregation: Aggregation
    index: int  # position of the aggregation in the view, which keys its online partial state
    window_us: int
    hop_us: int


def window_features(aggregations: Sequence[Aggregation]) -> tuple[WindowFeature, ...]:
    """Expand aggregations into one WindowFeature per (aggregation, window), checking names are unique."""
    out: list[WindowFeature] = []
    seen: set[str] = set()
    for i, agg in enumerate(aggregations):
        if not isinstance(agg, Aggregation):
            raise ValidationError(f"aggregations must be Aggregation(...) values, got {agg!r}")
        for label in agg.windows:
            seconds = parse_window(label)
            name = f"{agg.base_name}_{label}"
            if name in seen:
                raise ValidationError(f"two aggregations both produce feature {name!r}; give one a name=")
            seen.add(name)
            out.append(WindowFeature(name, agg, i, seconds * US, hop_for(seconds) * US))
    return tuple(out)


def window_start_us(t_us: int, window_us: int, hop_us: int) -> int:
    """Return the first event time (µs) a window read at t_us covers (aligned down to the hop)."""
    edge = t_us - window_us
    return edge - edge % hop_us  # Python's % is a floor modulo, right for times before 1970 too
