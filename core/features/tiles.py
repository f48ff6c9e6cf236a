"""Online window state: pre-aggregated time tiles per entity, applied from events and read in O(tiles).

Each entity of a window view holds, per hop size, the partial aggregates of each tile (event time
// hop), plus the newest event time seen (``m``) and the last stream offset applied per partition
(``p``), which makes a replay after a crash apply nothing twice. Numeric partials are columnar rows
(:mod:`forgeml.features.tile_columns`, folded a micro-batch at a time with numpy); first, last,
last_n, distinct counts and non-numeric min/max keep Python partials per tile. The state is stored
in the online store as view ``{view}__windows``, one compact text per entity (a small JSON header
and the rows' bytes, base64). A read merges the tiles from the hop-aligned window start to the
tile of the read time, so its values follow the same rule as the offline query in
:mod:`forgeml.features.window_offline`.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forgeml.features.aggregations import WindowFeature, window_features, window_start_us
from forgeml.features.definitions import FeatureView
from forgeml.features.sketches import FUNCTION as APPROX
from forgeml.features.tile_columns import Layout, partial_row, raw, window_value

STATE_SUFFIX = "__windows"


def state_view(view: str) -> str:
    """Return the online-store view name holding a window view's tile state."""
    return f"{view}{STATE_SUFFIX}"


# ---------------------------------------------------------------- partial aggregates
def _new(fn: str, lg_k: int = 0) -> Any:
    if fn == APPROX:
        from forgeml.features.sketches import new_sketch

        return new_sketch(lg_k)
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
    elif fn == APPROX:
        from forgeml.features.sketches import add

        add(p, v)
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
    if fn == APPROX:
        from forgeml.features.sketches import estimate

        return estimate(parts, parts[0].lg_config_k) if parts else 0
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
    """What a window view keeps per entity: which aggregations each hop's tiles hold, and how long.

    Numeric aggregations (see :func:`~forgeml.features.tile_columns.is_columnar`) keep columnar
    rows folded a batch at a time; the others keep Python partials per tile, folded per event.
    """

    view: FeatureView
    features: tuple[WindowFeature, ...]
    hops: dict[int, tuple[int, ...]]  # hop µs -> aggregation indexes its tiles hold
    keep_us: dict[int, int]  # hop µs -> how far behind the newest event its tiles are still read
    lateness_us: int | None
    by_name: dict[str, WindowFeature] = field(default_factory=dict)
    layout: Layout = field(init=False)
    object_hops: dict[int, tuple[int, ...]] = field(init=False)  # hop -> the non-columnar aggregations
    set_slots: dict[int, tuple[int, ...]] = field(init=False)
    sketch_slots: dict[int, tuple[int, ...]] = field(init=False)
    slot: dict[int, tuple[str, tuple[str, ...], bool]] = field(init=False)  # columnar: (function, fields, integer)
    slot_at: dict[int, tuple[int, ...]] = field(init=False)  # columnar: its fields' positions in a row
    reads: dict[tuple[Any, ...], Any] = field(init=False)  # recent reads per entity (see read_window_rows)
    spans: tuple[tuple[int, int], ...] = field(init=False)  # every (window, hop) of the view's features

    def __post_init__(self) -> None:
        aggs = self.view.aggregations
        self.layout = Layout.of(aggs)
        self.slot = self.layout.slots
        self.slot_at = {a: tuple(self.layout.index[f] for f in fields) for a, (_, fields, _) in self.slot.items()}
        self.reads = {}
        self.spans = tuple(sorted({(w.window_us, w.hop_us) for w in self.features}))
        self.object_hops = {hop: objs for hop, members in self.hops.items()
                            if (objs := tuple(a for a in members if a not in self.slot))}
        self.set_slots = {hop: tuple(j for j, a in enumerate(objs) if aggs[a].function == "count_distinct")
                          for hop, objs in self.object_hops.items()}
        self.sketch_slots = {hop: tuple(j for j, a in enumerate(objs) if aggs[a].function == APPROX)
                             for hop, objs in self.object_hops.items()}

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

    def empty_state(self) -> dict[str, Any]:
        """Return the state of an entity that has seen no event."""
        return {"p": {}, "m": None, "t": {}, "c": self.layout.empty()}


def fold_objects(plan: TilePlan, state: dict[str, Any], times: Sequence[int], columns: dict[int, list[Any]]) -> None:
    """Fold one entity's applied events into its per-object partials (first, last, last_n, distinct, ...)."""
    aggs = plan.view.aggregations
    tiles_by_hop = state["t"]
    for hop, members in plan.object_hops.items():
        tiles = tiles_by_hop.setdefault(hop, {})
        for i, ts in enumerate(times):
            tile = ts // hop
            partials = tiles.get(tile)
            if partials is None:
                partials = tiles[tile] = [_new(aggs[a].function, aggs[a].lg_k) for a in members]
            for j, a in enumerate(members):
                agg = aggs[a]
                partials[j] = _add(agg.function, partials[j], ts, columns[a][i] if agg.column else None, agg.n)
    newest = state["m"]
    for hop, tiles in tiles_by_hop.items():
        oldest = (newest - plan.keep_us[hop]) // hop
        for tile in [t for t in tiles if t < oldest]:
            del tiles[tile]


def read_features(plan: TilePlan, state: dict[str, Any] | None, names: Sequence[str], now_us: int) -> list[Any]:
    """Return each named window feature's value at now_us from an entity's state (None: no state)."""
    out = []
    tiles_by_hop = state["t"] if state else {}
    rows = state["c"].tolist() if state else []
    selected: dict[tuple[int, int, int], Any] = {}
    for name in names:
        w = plan.by_name[name]
        agg = w.aggregation
        hop = w.hop_us
        lo = window_start_us(now_us, w.window_us, hop) // hop
        hi = now_us // hop
        if w.index in plan.slot:
            fn, _, integer = plan.slot[w.index]
            span = (hop, lo, hi)
            if span not in selected:
                selected[span] = list(zip(*(r for r in rows if r[0] == hop and lo <= r[1] <= hi)))
            out.append(window_value(selected[span], fn, plan.slot_at[w.index], integer))
            continue
        j = plan.object_hops[w.hop_us].index(w.index)
        tiles = tiles_by_hop.get(w.hop_us) or {}
        if hi - lo + 1 < len(tiles):
            parts = [tiles[t][j] for t in range(lo, hi + 1) if t in tiles]
        else:
            parts = [p[j] for t, p in tiles.items() if lo <= t <= hi]
        out.append(_result(agg.function, parts, agg.n))
    return out


# ---------------------------------------------------------------- serialization
def dump_state(plan: TilePlan, state: dict[str, Any]) -> str:
    """Encode an entity's state as text: "b" + base64 of (header length, JSON header, columnar rows).

    The header is [positions, newest, [[hop, [tile, *object partials], ...], ...], layout]; the rows
    are the columnar partials' bytes, which load back without parsing.
    """
    import orjson

    tiles = [[hop, [[tile, *partials] for tile, partials in held.items()]] for hop, held in state["t"].items()]
    header = orjson.dumps([state["p"], state["m"], tiles, plan.layout.signature], default=_jsonable)
    rows = raw(state["c"])
    return "b" + base64.b64encode(b"".join((struct.pack("<I", len(header)), header, rows.tobytes()))).decode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, set):
        return list(value)
    from forgeml.features.sketches import encode, is_sketch

    if is_sketch(value):
        return encode(value)
    raise TypeError(f"cannot store a {type(value).__name__} in window state")


def load_state(plan: TilePlan, text: str) -> dict[str, Any]:
    """Decode an entity's state (distinct-value lists back to sets; JSON state of earlier releases too)."""
    import orjson

    if text.startswith("["):
        return _load_json_state(plan, orjson.loads(text))
    blob = base64.b64decode(text[1:])
    (size,) = struct.unpack_from("<I", blob)
    positions, newest, held_by_hop, signature = orjson.loads(blob[4:4 + size])
    layout = plan.layout
    if signature == layout.signature:
        rows = np.frombuffer(blob, layout.dtype, offset=4 + size).copy()
    else:  # written under another definition: keep the slots both share, on the hops still used
        old = Layout(np.dtype([tuple(f.split(":")) for f in signature.split(",")]), {})
        rows = layout.adopt(np.frombuffer(blob, old.dtype, offset=4 + size))
        rows = rows[np.isin(rows["hop"], list(plan.hops))]
    tiles: dict[int, dict[int, list[Any]]] = {}
    for hop, held in held_by_hop:
        members = plan.object_hops.get(hop)
        if members is None or (held and len(held[0]) != len(members) + 1):
            continue  # a hop or an aggregation set the definition no longer uses
        tiles[hop] = _object_tiles(plan, hop, held)
    return {"p": positions, "m": newest, "t": tiles, "c": rows}


def _object_tiles(plan: TilePlan, hop: int, held: list[list[Any]]) -> dict[int, list[Any]]:
    sets, sketches = plan.set_slots.get(hop, ()), plan.sketch_slots.get(hop, ())
    if sketches:
        from forgeml.features.sketches import decode
    decoded = {}
    for entry in held:
        partials = entry[1:]
        for j in sets:
            partials[j] = set(partials[j])
        for j in sketches:
            partials[j] = decode(partials[j])
        decoded[entry[0]] = partials
    return decoded


def _load_json_state(plan: TilePlan, data: list[Any]) -> dict[str, Any]:
    """Read the JSON state of earlier releases: every aggregation's partial per tile, in member order."""
    positions, newest, held_by_hop = data
    aggs = plan.view.aggregations
    rows, tiles = [], {}
    for hop, held in held_by_hop:
        members = plan.hops.get(hop)
        if members is None:
            continue
        objects = plan.object_hops.get(hop, ())
        kept = []
        for tile, *partials in held:
            row = np.zeros(1, plan.layout.dtype)[0]
            row["hop"], row["tile"] = hop, tile
            for j, a in enumerate(members):
                if a in plan.slot:
                    partial_row(aggs[a].function, plan.slot[a][1], row, partials[j])
            rows.append(row)
            kept.append([tile, *(partials[members.index(a)] for a in objects)])
        if objects:
            tiles[hop] = _object_tiles(plan, hop, kept)
    columnar = np.array(rows, plan.layout.dtype) if rows else plan.layout.empty()
    return {"p": positions, "m": newest, "t": tiles, "c": columnar}
