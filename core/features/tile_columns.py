"""Columnar tile partials: the numeric aggregations of a window view, folded one micro-batch at a time.

count, sum, mean, stddev, and min/max over a numeric column keep their partials as fixed-width
rows, one per (hop, tile) of an entity: a numpy structured array. A batch of events becomes one
row per event and hop; those rows and the touched entities' stored rows are sorted by
(entity, hop, tile) and merged with ``reduceat`` — sums add, extremes take min/max, and stddev
partials (n, mean, M2) merge with the pairwise formula of Chan et al. — so the cost is numpy work
per batch, not Python work per event. Reads merge the rows of a window's tiles the same way.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
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

    index: dict[str, int] = field(default_factory=dict)  # field name -> position in a row

    def __post_init__(self) -> None:
        text = ",".join(f"{name}:{self.dtype[name].str}" for name in self.dtype.names or ())
        object.__setattr__(self, "signature", text)
        object.__setattr__(self, "index", {name: j for j, name in enumerate(self.dtype.names or ())})

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


def window_value(columns: Sequence[tuple[Any, ...]], fn: str, at: tuple[int, ...], integer: bool) -> Any:
    """Merge one window's rows (already selected, given column-wise; empty: no rows) into an aggregation's value.

    ``at`` holds the positions of the aggregation's fields in a row (:attr:`Layout.index`). A window
    spans tens of tiles, for which plain Python costs less than numpy's fixed cost per call.
    """
    if not columns:
        return 0 if fn == "count" else None
    n = columns[at[0]]
    count = sum(n)
    if fn == "count":
        return count
    if fn == "stddev":
        if count < 2:
            return None
        u, q = columns[at[1]], columns[at[2]]
        mean = math.fsum(map(operator.mul, n, u)) / count
        m2 = math.fsum(qi + ni * (ui - mean) * (ui - mean) for ni, ui, qi in zip(n, u, q))
        return math.sqrt(max(m2, 0.0) / (count - 1))
    if not count:
        return None
    v = columns[at[1]]
    if fn in MOMENT_FNS:
        total = math.fsum(v)
        return total if fn == "sum" else total / count
    held = v if min(n) > 0 else [x for x, c in zip(v, n) if c > 0]
    best = min(held) if fn == "min" else max(held)
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


def fold_few(layout: Layout, hops: dict[int, tuple[int, ...]], keep_us: dict[int, int], rows: np.ndarray,
             times: Sequence[int], values: dict[int, tuple[list[Any], list[bool]]], newest: int) -> np.ndarray:
    """Fold a few events of one entity into its rows in plain Python: numpy's fixed cost per call would
    exceed the work. The rows come out as :func:`event_rows`, :func:`merge_rows` and :func:`evict` make them."""
    names = layout.dtype.names or ()
    width = len(names)
    groups: dict[tuple[int, int], list[list[Any]]] = {(r[0], r[1]): [list(r)] for r in rows.tolist()}
    for hop, members in hops.items():
        held = [a for a in members if a in layout.slots]
        if not held:
            continue
        for i, t in enumerate(times):
            row: list[Any] = [0] * width
            row[0], row[1] = hop, t // hop
            for a in held:
                fields = layout.slots[a][1]
                if fields[0] == "c":
                    row[layout.index["c"]] = 1
                    continue
                v, valid = values[a]
                row[layout.index[fields[0]]] = int(valid[i])
                for name in fields[1:]:
                    if name[0] != "q":
                        row[layout.index[name]] = v[i] if valid[i] else 0
            groups.setdefault((hop, row[1]), []).append(row)
    out = []
    for (hop, tile), members in groups.items():
        reach = keep_us.get(hop)
        if reach is not None and tile < (newest - reach) // hop:
            continue
        out.append(tuple(members[0]) if len(members) == 1 else _merge_few(layout, members))
    out.sort(key=_hop_tile)
    return np.array(out, layout.dtype) if out else layout.empty()


def _hop_tile(row: tuple[Any, ...]) -> tuple[Any, Any]:
    return row[0], row[1]


def _merge_few(layout: Layout, members: list[list[Any]]) -> tuple[Any, ...]:
    """Merge the rows of one (hop, tile) with the formulas of :func:`merge_rows`."""
    out = list(members[0])
    index = layout.index
    for j, name in enumerate(layout.dtype.names or ()):
        if j < 2:
            continue
        kind, col = name.split("_", 1) if "_" in name else (name, "")
        if kind in ("c", "n", "s"):
            out[j] = sum(m[j] for m in members)
        elif kind == "u":
            nj, qj = index[f"n_{col}"], index[f"q_{col}"]
            total = sum(m[nj] for m in members)
            mean = sum(m[nj] * m[j] for m in members) / total if total > 0 else 0.0
            out[j] = mean
            out[qj] = sum(m[qj] + m[nj] * (m[j] - mean) * (m[j] - mean) for m in members)
        elif kind in ("lo", "hi"):
            nj = index[f"n_{col}"]
            held = [m[j] for m in members if m[nj] > 0]
            out[j] = (min(held) if kind == "lo" else max(held)) if held else 0
    return tuple(out)
