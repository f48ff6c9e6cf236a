"""Online window state: pre-aggregated time tiles per entity, applied from events and read in O(tiles).

Each entity of a window view holds, per hop size, a map from tile number (event time // hop) to
one partial aggregate per aggregation, plus the newest event time seen (``m``) and the last stream
offset applied per partition (``p``), which makes a replay after a crash apply nothing twice.
The state is one JSON document per entity, stored in the online store as view ``{view}__windows``.
A read merges the tiles from the hop-aligned window start to the tile of the read time, so its
values follow the same rule as the offline query in :mod:`forgeml.features.window_offline`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from forgeml.features.aggregations import WindowFeature, window_features, window_start_us
from forgeml.features.definitions import FeatureView

STATE_SUFFIX = "__windows"
COUNT, MOMENTS, MAX, MIN, OTHER = range(5)  # how apply_events folds an event into each partial


def state_view(view: str) -> str:
    """Return the online-store view name holding a window view's tile state."""
    return f"{view}{STATE_SUFFIX}"


# ---------------------------------------------------------------- partial aggregates
def _new(fn: str) -> Any:
    if fn == "count":
        return 0
    if fn in ("sum", "mean"):
        return [0, 0.0]
    if fn == "stddev":
        return [0, 0.0, 0.0]
    if fn == "count_distinct":
        return set()
    if fn == "last_n":
        return []
    return None  # min, max, first, last


def _add(fn: str, p: Any, ts: int, v: Any, n: int) -> Any:
    """Fold one event into a partial and return the partial (a new object for immutable forms)."""
    if fn == "count":
        return p + 1
    if v is None:
        return p
    if fn in ("sum", "mean"):
        p[0] += 1
        p[1] += v
    elif fn == "stddev":  # Welford's update
        p[0] += 1
        delta = v - p[1]
        p[1] += delta / p[0]
        p[2] += delta * (v - p[1])
    elif fn == "min":
        return v if p is None or v < p else p
    elif fn == "max":
        return v if p is None or v > p else p
    elif fn == "count_distinct":
        p.add(v)
    elif fn == "first":
        return [ts, v] if p is None or (ts, v) < (p[0], p[1]) else p
    elif fn == "last":
        return [ts, v] if p is None or (ts, v) > (p[0], p[1]) else p
    else:  # last_n: newest first, at most n
        p.append([ts, v])
        p.sort(key=_newest, reverse=True)
        del p[n:]
    return p


def _newest(item: list[Any]) -> tuple[Any, Any]:
    return item[0], item[1]


def _result(fn: str, parts: list[Any], n: int) -> Any:
    """Merge the partials of the tiles in a window into the feature value."""
    if fn == "count":
        return sum(parts)
    if fn in ("sum", "mean"):
        count = sum(p[0] for p in parts)
        if not count:
            return None
        total = math.fsum(p[1] for p in parts) if fn == "sum" else sum(p[1] for p in parts)
        return float(total) if fn == "sum" else total / count
    if fn == "stddev":  # Chan et al.'s pairwise merge of (n, mean, M2)
        count, mean, m2 = 0, 0.0, 0.0
        for c, mu, q in parts:
            if not c:
                continue
            total = count + c
            delta = mu - mean
            mean += delta * c / total
            m2 += q + delta * delta * count * c / total
            count = total
        return math.sqrt(max(m2, 0.0) / (count - 1)) if count > 1 else None
    if fn == "count_distinct":
        seen: set[Any] = set()
        for p in parts:
            seen.update(p)
        return len(seen)
    present = [p for p in parts if p is not None]
    if fn == "min":
        return min(present) if present else None
    if fn == "max":
        return max(present) if present else None
    if fn == "first":
        return min(present, key=_newest)[1] if present else None
    if fn == "last":
        return max(present, key=_newest)[1] if present else None
    merged = sorted((item for p in parts for item in p), key=_newest, reverse=True)
    return [item[1] for item in merged[:n]]


# ---------------------------------------------------------------- a view's compiled plan
@dataclass
class TilePlan:
    """What a window view keeps per entity: which aggregations each hop's tiles hold, and how long."""

    view: FeatureView
    features: tuple[WindowFeature, ...]
    hops: dict[int, tuple[int, ...]]  # hop µs -> aggregation indexes its tiles hold
    keep_us: dict[int, int]  # hop µs -> how far behind the newest event its tiles are still read
    lateness_us: int | None
    by_name: dict[str, WindowFeature] = field(default_factory=dict)
    hop_ops: list[tuple[int, tuple[int, ...], tuple[tuple[int, int, int], ...]]] = field(default_factory=list)
    set_slots: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        fns = [a.function for a in self.view.aggregations]
        codes = {"count": COUNT, "sum": MOMENTS, "mean": MOMENTS, "max": MAX, "min": MIN}
        self.hop_ops = [(hop, members, tuple((j, codes.get(fns[a], OTHER), a) for j, a in enumerate(members)))
                        for hop, members in self.hops.items()]
        self.set_slots = {hop: tuple(j for j, a in enumerate(members) if fns[a] == "count_distinct")
                          for hop, members in self.hops.items()}

    @classmethod
    def of(cls, view: FeatureView) -> TilePlan:
        """Compile a window view."""
        features = window_features(view.aggregations)
        hops: dict[int, set[int]] = {}
        keep: dict[int, int] = {}
        for w in features:
            hops.setdefault(w.hop_us, set()).add(w.index)
            keep[w.hop_us] = max(keep.get(w.hop_us, 0), w.window_us + w.hop_us)
        lateness = None if view.allowed_lateness is None else int(view.allowed_lateness * 1_000_000)
        return cls(view, features, {h: tuple(sorted(a)) for h, a in hops.items()}, keep, lateness,
                   {w.name: w for w in features})


def empty_state() -> dict[str, Any]:
    """Return the state of an entity that has seen no event."""
    return {"p": {}, "m": None, "t": {}}


def apply_events(plan: TilePlan, state: dict[str, Any], times: Sequence[int], columns: Sequence[Sequence[Any]],
                 partitions: Sequence[str] | None, offsets: Sequence[int] | None) -> tuple[int, int, int]:
    """Fold one entity's events into its state; return (applied, duplicates skipped, too late and dropped).

    ``columns`` holds one value list per aggregation of the view (empty for count); events are in
    stream order. An event at or below its partition's applied offset is a replay and is skipped; one
    older than the entity's newest event by more than the allowed lateness is dropped.
    """
    aggs = plan.view.aggregations
    fns = [a.function for a in aggs]
    ns = [a.n for a in aggs]
    applied_pos = state["p"]
    newest = state["m"]
    tiles_by_hop = state["t"]
    lateness = plan.lateness_us
    applied = dups = late = 0
    for i, ts in enumerate(times):
        if partitions is not None:
            part, off = partitions[i], offsets[i]
            held = applied_pos.get(part)
            if held is not None and off <= held:
                dups += 1
                continue
            applied_pos[part] = off
        if lateness is not None and newest is not None and ts < newest - lateness:
            late += 1
            continue
        if newest is None or ts > newest:
            newest = ts
        for hop, members, ops in plan.hop_ops:
            tiles = tiles_by_hop.get(hop)
            if tiles is None:
                tiles = tiles_by_hop[hop] = {}
            tile = ts // hop
            partials = tiles.get(tile)
            if partials is None:
                partials = tiles[tile] = [_new(fns[a]) for a in members]
            # the common aggregations inline (this loop runs per event, hop and aggregation)
            for j, code, a in ops:
                if code == COUNT:
                    partials[j] += 1
                    continue
                v = columns[a][i]
                if v is None:
                    continue
                if code == MOMENTS:
                    p = partials[j]
                    p[0] += 1
                    p[1] += v
                elif code == MAX:
                    if partials[j] is None or v > partials[j]:
                        partials[j] = v
                elif code == MIN:
                    if partials[j] is None or v < partials[j]:
                        partials[j] = v
                else:
                    partials[j] = _add(fns[a], partials[j], ts, v, ns[a])
        applied += 1
    state["m"] = newest
    if newest is not None:
        # reads happen at or after the newest event, so older tiles can never enter a window again
        for hop, tiles in tiles_by_hop.items():
            oldest = (newest - plan.keep_us[hop]) // hop
            for tile in [t for t in tiles if t < oldest]:
                del tiles[tile]
    return applied, dups, late


def read_features(plan: TilePlan, state: dict[str, Any] | None, names: Sequence[str], now_us: int) -> list[Any]:
    """Return each named window feature's value at now_us from an entity's state (None: no state)."""
    out = []
    tiles_by_hop = state["t"] if state else {}
    for name in names:
        w = plan.by_name[name]
        agg = w.aggregation
        members = plan.hops[w.hop_us]
        j = members.index(w.index)
        tiles = tiles_by_hop.get(w.hop_us) or {}
        lo = window_start_us(now_us, w.window_us, w.hop_us) // w.hop_us
        hi = now_us // w.hop_us
        if hi - lo + 1 < len(tiles):
            parts = [tiles[t][j] for t in range(lo, hi + 1) if t in tiles]
        else:
            parts = [p[j] for t, p in tiles.items() if lo <= t <= hi]
        out.append(_result(agg.function, parts, agg.n))
    return out


# ---------------------------------------------------------------- serialization
def dump_state(state: dict[str, Any]) -> str:
    """Encode an entity's state as compact JSON: [positions, newest, [[hop, [tile, *partials], ...], ...]].

    Lists rather than objects: almost nothing to quote or escape when the online store embeds it.
    """
    import orjson

    tiles = [[hop, [[tile, *partials] for tile, partials in held.items()]] for hop, held in state["t"].items()]
    return orjson.dumps([state["p"], state["m"], tiles], default=_jsonable).decode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, set):
        return list(value)
    raise TypeError(f"cannot store a {type(value).__name__} in window state")


def load_state(plan: TilePlan, text: str) -> dict[str, Any]:
    """Decode an entity's state (distinct-value lists back to sets)."""
    import orjson

    positions, newest, held_by_hop = orjson.loads(text)
    tiles: dict[int, dict[int, list[Any]]] = {}
    for hop, held in held_by_hop:
        members = plan.hops.get(hop)
        if members is None:
            continue  # a hop the definition no longer uses
        sets = plan.set_slots.get(hop, ())
        decoded = {}
        for entry in held:
            partials = entry[1:]
            for j in sets:
                partials[j] = set(partials[j])
            decoded[entry[0]] = partials
        tiles[hop] = decoded
    return {"p": positions, "m": newest, "t": tiles}
