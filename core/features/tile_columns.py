"""Columnar tile partials: the numeric aggregations of a window view, folded one micro-batch at a time.

count, sum, mean, stddev, and min/max over a numeric column keep their partials as fixed-width
rows, one per (hop, tile) of an entity: a numpy structured array. A batch of events becomes one
row per event and hop; those rows and the touched entities' stored rows are sorted by
(entity, hop, tile) and merged with ``reduceat`` — sums add, extremes take min/max, and stddev
partials (n, mean, M2) merge with the pairwise formula of Chan et al. — so the cost is numpy work
per batch, not Python work per event. Reads merge the rows of a window's tiles the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MOMENT_FNS = ("sum", "mean", "stddev")
NUMBERS = ("int32", "int64", "float32", "float64")


def is_columnar(function: str, dtype: str) -> bool:
    """Whether an aggregation keeps fixed-width partials (the rest keep Python objects per tile)."""
    if function == "count":
        return True
    if function in MOMENT_FNS:
        return dtype in (*NUMBERS, "bool")
    return function in ("min", "max") and dtype in NUMBERS


@dataclass(frozen=True)
class Layout:
    """The row type of a view's columnar partials: one slot per distinct partial, shared by aggregations.

    Every count uses ``c``; aggregations over column X share ``n_X`` (its non-null values), and
    sum and mean share ``s_X``; stddev adds ``u_X`` (mean) and ``q_X`` (M2), min ``lo_X``, max ``hi_X``.
    """

    dtype: np.dtype
    slots: dict[int, tuple[str, tuple[str, ...], bool]]  # aggregation index -> (function, its fields, integer)
    signature: str = ""  # the fields as text, stored with each state to spot a changed definition

    def __post_init__(self) -> None:
        text = ",".join(f"{name}:{self.dtype[name].str}" for name in self.dtype.names or ())
        object.__setattr__(self, "signature", text)

    @classmethod
    def of(cls, aggregations: Sequence[Any]) -> Layout:
        """Lay out the columnar aggregations of a view (by their index in the view)."""
        fields: dict[str, str] = {"hop": "<i8", "tile": "<i8"}
        slots = {}
        for a, agg in enumerate(aggregations):
            if not is_columnar(agg.function, agg.dtype):
                continue
            fn, col = agg.function, agg.column
            integer = agg.dtype in ("int32", "int64")
            if fn == "count":
                names: tuple[str, ...] = ("c",)
            elif fn == "stddev":
                names = (f"n_{col}", f"u_{col}", f"q_{col}")
            elif fn in MOMENT_FNS:
                names = (f"n_{col}", f"s_{col}")
            else:
                names = (f"n_{col}", f"{'lo' if fn == 'min' else 'hi'}_{col}")
            for name in names:
                fields.setdefault(name, "<f8" if name[0] in "suq" or (name[0] in "lh" and not integer) else "<i8")
            slots[a] = (fn, names, integer)
        return cls(np.dtype(list(fields.items())), slots)

    def empty(self) -> np.ndarray:
        """Return no rows."""
        return np.zeros(0, self.dtype)

    def adopt(self, rows: np.ndarray) -> np.ndarray:
        """Return rows written under another layout in this one (fields both share kept, new ones zero)."""
        out = np.zeros(len(rows), self.dtype)
        for name in set(out.dtype.names or ()) & set(rows.dtype.names or ()):
            out[name] = rows[name]
        return out


def raw(rows: np.ndarray) -> np.ndarray:
    """View rows as opaque fixed-size records: numpy copies, takes and joins those far faster than fielded ones."""
    return rows.view(np.dtype((np.void, rows.dtype.itemsize)))


def join(layout: Layout, parts: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate row arrays of one layout."""
    if not parts:
        return layout.empty()
    return np.concatenate([raw(p) for p in parts]).view(layout.dtype)


def event_rows(layout: Layout, hops: dict[int, tuple[int, ...]], times: np.ndarray,
               values: dict[int, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Return one partial row per (event, hop) and the index of its event; values: index -> (values, valid)."""
    n = len(times)
    parts, which = [], []
    for hop, members in hops.items():
        held = [a for a in members if a in layout.slots]
        if not held:
            continue
        rows = np.zeros(n, layout.dtype)
        rows["hop"] = hop
        rows["tile"] = times // hop
        for a in held:
            names = layout.slots[a][1]
            if names[0] == "c":
                rows["c"] = 1
                continue
            v, valid = values[a]
            rows[names[0]] = valid
            for name in names[1:]:
                if name[0] != "q":
                    rows[name] = np.where(valid, v, 0)
        parts.append(rows)
        which.append(np.arange(n))
    if not parts:
        return layout.empty(), np.zeros(0, np.int64)
    return join(layout, parts), np.concatenate(which)


def merge_rows(layout: Layout, rows: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge the rows of each (owner, hop, tile) into one; return them sorted by owner, hop, tile."""
    if len(rows) == 0:
        return rows, owners
    order = np.lexsort((rows["tile"], rows["hop"], owners))
    rows, owners = raw(rows)[order].view(layout.dtype), owners[order]
    change = np.empty(len(rows), bool)
    change[0] = True
    change[1:] = (owners[1:] != owners[:-1]) | (rows["hop"][1:] != rows["hop"][:-1]) | (
        rows["tile"][1:] != rows["tile"][:-1])
    starts = np.flatnonzero(change)
    if len(starts) == len(rows):
        return rows, owners
    group = np.cumsum(change) - 1
    out = raw(rows)[starts].view(layout.dtype)
    for name in (layout.dtype.names or ())[2:]:
        kind, col = name.split("_", 1) if "_" in name else (name, "")
        if kind in ("c", "n", "s"):
            out[name] = np.add.reduceat(rows[name], starts)
        elif kind == "u":  # pooled mean, then M2 = sum of M2_i + n_i (mean_i - mean)^2
            n, u = rows[f"n_{col}"], rows[name]
            total = np.add.reduceat(n, starts)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(total > 0, np.add.reduceat(n * u, starts) / total, 0.0)
            d = u - mean[group]
            out[name] = mean
            out[f"q_{col}"] = np.add.reduceat(rows[f"q_{col}"] + n * d * d, starts)
        elif kind in ("lo", "hi"):
            held = rows[f"n_{col}"] > 0
            integer = rows.dtype[name].kind == "i"
            far = (np.iinfo(np.int64).max if kind == "lo" else np.iinfo(np.int64).min) if integer else (
                np.inf if kind == "lo" else -np.inf)
            pick = np.minimum if kind == "lo" else np.maximum
            best = pick.reduceat(np.where(held, rows[name], far), starts)
            out[name] = np.where(np.logical_or.reduceat(held, starts), best, 0)
    return out, owners[starts]


def evict(rows: np.ndarray, owners: np.ndarray, newest: np.ndarray, keep_us: dict[int, int]) -> np.ndarray:
    """Return a mask of the rows some window can still reach (reads happen at or after the owner's newest)."""
    keep = np.ones(len(rows), bool)
    for hop, reach in keep_us.items():
        on = rows["hop"] == hop
        keep[on] = rows["tile"][on] >= (newest[owners[on]] - reach) // hop
    return keep


def window_value(rows: np.ndarray, fn: str, names: tuple[str, ...], integer: bool) -> Any:
    """Merge the rows of one window (already selected) into an aggregation's value."""
    if fn == "count":
        return int(rows["c"].sum())
    n = rows[names[0]]
    count = int(n.sum())
    if fn == "stddev":
        if count < 2:
            return None
        u = rows[names[1]]
        mean = float(np.dot(n, u)) / count
        d = u - mean
        m2 = float(np.sum(rows[names[2]] + n * d * d))
        return float(np.sqrt(max(m2, 0.0) / (count - 1)))
    if not count:
        return None
    if fn in MOMENT_FNS:
        total = float(np.sum(rows[names[1]]))
        return total if fn == "sum" else total / count
    v = rows[names[1]][n > 0]
    best = v.min() if fn == "min" else v.max()
    return int(best) if integer else float(best)


def partial_row(fn: str, names: tuple[str, ...], row: np.void, partial: Any) -> None:
    """Write a partial in the per-object form of earlier releases into a row's slots."""
    if fn == "count":
        row["c"] = partial
    elif fn in MOMENT_FNS:
        for name, part in zip(names, partial):
            row[name] = part
    elif partial is not None:
        row[names[1]] = partial
        row[names[0]] = max(int(row[names[0]]), 1)  # shared with the column's other aggregations
