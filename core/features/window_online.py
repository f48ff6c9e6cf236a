"""Applying events to a window view's online tiles, and reading its features from them."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from forgeml.errors import ValidationError
from forgeml.features.aggregations import window_start_us
from forgeml.features.definitions import FeatureView
from forgeml.features.tiles import TilePlan, dump_state, load_state, state_view

PARTITION, OFFSET = "_partition", "_offset"


@dataclass
class ApplyCounts:
    """What applying a batch of events did."""

    applied: int = 0
    duplicates: int = 0
    late: int = 0
    entities: int = 0

    def add(self, other: ApplyCounts) -> None:
        """Accumulate another batch's counts."""
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.late += other.late
        self.entities += other.entities


def conform_events(view: FeatureView, events: Any, where: str) -> Any:
    """Check and cast a batch of raw events to the view's keys, event time and aggregated columns."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from forgeml.features.transform import cast_declared
    from forgeml.features.window_offline import event_columns

    needed = event_columns(view)
    missing = [c for c in needed if c not in events.column_names]
    if missing:
        raise ValidationError(f"{where}: events for view {view.name!r} lack column {missing[0]!r} "
                              f"(needed: {', '.join(needed)})")
    ts = events.column(view.timestamp_field)
    if pa.types.is_string(ts.type) or pa.types.is_large_string(ts.type):  # a stream that carries text
        try:
            ts = pc.cast(ts, pa.timestamp("us", tz="UTC"))
        except pa.ArrowInvalid as e:
            raise ValidationError(f"{where}: {view.timestamp_field!r} holds text that is not an ISO time with a "
                                  f"zone ({e})") from e
    if not pa.types.is_timestamp(ts.type) or ts.type.tz is None:
        raise ValidationError(f"{where}: {view.timestamp_field!r} must hold time-zone-aware timestamps, got {ts.type}")
    if ts.null_count:
        raise ValidationError(f"{where}: {ts.null_count} events have no {view.timestamp_field!r}")
    columns = {k: cast_declared(events.column(k), e.dtype, f"{where}: join key {k!r}")
               for e in view.entities for k in e.join_keys}
    columns[view.timestamp_field] = pc.cast(ts, pa.timestamp("us", tz="UTC"), safe=False)
    for agg in view.aggregations:
        if agg.column and agg.column not in columns:
            columns[agg.column] = cast_declared(events.column(agg.column), agg.dtype, f"{where}: column {agg.column!r}")
    for name in (PARTITION, OFFSET):
        if name in events.column_names:
            columns[name] = events.column(name)
    return pa.table(columns)


def _python_values(column: Any) -> list[Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(column.type):  # tiles keep instants as epoch µs
        return pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64()).to_pylist()
    return column.to_pylist()


def _numbers(column: Any) -> tuple[Any, Any]:
    """Return a numeric column as (numpy values with nulls as 0, numpy validity)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("us", tz=col.type.tz)).cast(pa.int64())
    if pa.types.is_boolean(col.type):
        col = pc.cast(col, pa.int64())
    if col.null_count == 0:  # the common case, without a compute call per column
        return col.to_numpy(zero_copy_only=False), np.ones(len(col), bool)
    return col.fill_null(0).to_numpy(zero_copy_only=False), pc.is_valid(col).to_numpy(zero_copy_only=False)


def _entity_codes(events: Any, join_keys: Sequence[str]) -> tuple[Any, list[tuple[Any, ...]]]:
    """Return each event's entity number and the entities' key tuples, in first-seen order."""
    import numpy as np
    import pyarrow as pa

    encoded = []
    for k in join_keys:
        col = events.column(k)
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        encoded.append(col.dictionary_encode(null_encoding="encode"))
    if len(encoded) == 1:
        return encoded[0].indices.to_numpy().astype(np.int64), [(v,) for v in encoded[0].dictionary.to_pylist()]
    combined = np.zeros(events.num_rows, np.int64)
    for enc in encoded:
        combined = combined * len(enc.dictionary) + enc.indices.to_numpy()
    uniq, first, codes = np.unique(combined, return_index=True, return_inverse=True)
    dictionaries = [enc.dictionary.to_pylist() for enc in encoded]
    indices = [enc.indices.to_numpy() for enc in encoded]
    keys = [tuple(d[ix[i]] for d, ix in zip(dictionaries, indices)) for i in first.tolist()]
    return codes.astype(np.int64), keys


def _fresh(states: list[dict[str, Any]], codes: Any, events: Any) -> Any:
    """Mark each event at or below its partition's applied offset (a replay) False; move the offsets on."""
    import numpy as np

    keep = np.ones(len(codes), bool)
    if PARTITION not in events.column_names:
        return keep
    part = events.column(PARTITION).combine_chunks().dictionary_encode()
    pcodes = part.indices.to_numpy()
    offsets = events.column(OFFSET).to_numpy().astype(np.int64)
    for pi, name in enumerate(part.dictionary.to_pylist()):
        held = np.array([s["p"].get(name, NONE) for s in states], np.int64)
        on = pcodes == pi
        keep &= ~(on & (offsets <= held[codes]))
        moved = on & keep
        top = np.full(len(states), NONE, np.int64)
        np.maximum.at(top, codes[moved], offsets[moved])
        for k in np.flatnonzero(top > NONE).tolist():
            states[k]["p"][name] = int(top[k])
    return keep


NONE = -(2 ** 62)  # "no offset / no event yet" in int64 arrays, far from any real value


def apply_batch(plan: TilePlan, states: list[dict[str, Any]], codes: Any, events: Any) -> tuple[int, int, int]:
    """Fold conformed events into their entities' states (codes index states); return (applied, dups, late).

    A replayed event (at or below its partition's applied offset) is skipped; one older than its
    entity's newest event by more than the allowed lateness is dropped. Columnar partials fold with
    numpy over the whole batch; the other aggregations per event, only where a view has them.
    """
    import numpy as np

    from forgeml.features.tile_columns import event_rows, evict, join, merge_rows, raw
    from forgeml.features.tiles import fold_objects

    if len(codes) <= FEW:
        return _apply_few(plan, states, codes.tolist(), events)
    view = plan.view
    times = _numbers(events.column(view.timestamp_field))[0]
    keep = _fresh(states, codes, events)
    dups = int(len(keep) - keep.sum())
    prior = np.array([NONE if s["m"] is None else s["m"] for s in states], np.int64)
    if plan.lateness_us is not None:
        idx = np.flatnonzero(keep)
        t, c = times[idx], codes[idx]
        # the running newest over all entities bounds each entity's: when nothing is late against it, done
        seen = np.maximum(np.maximum.accumulate(t), prior[c]) if len(t) else t
        if (t < seen - plan.lateness_us).any():
            import pandas as pd

            seen = np.maximum(pd.Series(t).groupby(c).cummax().to_numpy(), prior[c])
            keep[idx[t < seen - plan.lateness_us]] = False
    late = int(len(keep) - keep.sum()) - dups
    applied = np.flatnonzero(keep)
    owners = codes[applied]
    newest = prior.copy()
    np.maximum.at(newest, owners, times[applied])
    touched = np.unique(owners)
    for k in touched.tolist():
        states[k]["m"] = int(newest[k])
    layout = plan.layout
    if layout.slots and len(applied):
        by_column = {col: _numbers(events.column(col)) for col in {view.aggregations[a].column for a in layout.slots}
                     if col}
        whole = len(applied) == len(times)
        values = {a: tuple(v if whole else v[applied] for v in by_column[view.aggregations[a].column])
                  for a, (fn, _, _) in layout.slots.items() if fn != "count"}
        new, which = event_rows(layout, plan.hops, times[applied], values)
        held = [states[k]["c"] for k in touched.tolist()]
        rows, by = merge_rows(layout, join(layout, [*held, new]),
                              np.concatenate([np.repeat(touched, [len(h) for h in held]), owners[which]]))
        reach = evict(rows, by, newest, plan.keep_us)
        packed, by = raw(rows)[reach], by[reach]
        lo, hi = np.searchsorted(by, touched, "left"), np.searchsorted(by, touched, "right")
        for k, s, e in zip(touched.tolist(), lo.tolist(), hi.tolist()):
            states[k]["c"] = packed[s:e].copy().view(layout.dtype)
    if plan.object_hops and len(applied):
        aggs = view.aggregations
        objects = {a: _python_values(events.column(aggs[a].column).take(applied))
                   for members in plan.object_hops.values() for a in members if aggs[a].column}
        order = np.argsort(owners, kind="stable")
        cuts = np.flatnonzero(np.diff(owners[order])) + 1
        t_applied = times[applied].tolist()
        for group in np.split(order, cuts):
            rows_of = group.tolist()
            fold_objects(plan, states[int(owners[group[0]])], [t_applied[i] for i in rows_of],
                         {a: [col[i] for i in rows_of] for a, col in objects.items()})
    return len(applied), dups, late


FEW = 16  # events up to which a batch is folded in plain Python (a push of one event, a quiet stream)


def _apply_few(plan: TilePlan, states: list[dict[str, Any]], owners: list[int], events: Any) -> tuple[int, int, int]:
    """apply_batch for a few events, with the same rules, in plain Python."""
    from forgeml.features.tile_columns import fold_few
    from forgeml.features.tiles import fold_objects

    view = plan.view
    times = _python_values(events.column(view.timestamp_field))
    n = len(times)
    keep = [True] * n
    if PARTITION in events.column_names:
        parts, offsets = events.column(PARTITION).to_pylist(), events.column(OFFSET).to_pylist()
        held = {(k, p): states[k]["p"].get(p, NONE) for k, p in zip(owners, parts)}  # as before the batch
        keep = [o > held[k, p] for k, p, o in zip(owners, parts, offsets)]
        for k, p, o, fresh in zip(owners, parts, offsets, keep):
            if fresh and o > states[k]["p"].get(p, NONE):
                states[k]["p"][p] = int(o)
    dups = n - sum(keep)
    if plan.lateness_us is not None:
        seen: dict[int, int] = {}
        for i in range(n):
            if keep[i]:
                k, t = owners[i], times[i]
                newest = seen[k] = max(seen.get(k, NONE if states[k]["m"] is None else states[k]["m"]), t)
                keep[i] = t >= newest - plan.lateness_us
    applied = [i for i in range(n) if keep[i]]
    mine: dict[int, list[int]] = {}
    for i in applied:
        mine.setdefault(owners[i], []).append(i)
    for k, rows_of in mine.items():
        top = max(times[i] for i in rows_of)
        states[k]["m"] = top if states[k]["m"] is None else max(states[k]["m"], top)
    aggs = view.aggregations
    columns = {a: aggs[a].column for a in (*plan.slot, *(a for m in plan.object_hops.values() for a in m))
               if aggs[a].column}
    pylists = {c: _python_values(events.column(c)) for c in set(columns.values())}
    for k, rows_of in mine.items():
        ts = [times[i] for i in rows_of]
        if plan.slot:
            values = {}
            for a, (fn, _, _) in plan.slot.items():
                if fn != "count":
                    v = [pylists[columns[a]][i] for i in rows_of]
                    values[a] = (v, [x is not None for x in v])
            states[k]["c"] = fold_few(plan.layout, plan.hops, plan.keep_us, states[k]["c"], ts, values,
                                      states[k]["m"])
        if plan.object_hops:
            fold_objects(plan, states[k], ts, {a: [pylists[c][i] for i in rows_of] for a, c in columns.items()
                                               if a not in plan.slot})
    return len(applied), dups, n - len(applied) - dups


KNOWN_STATES = 4096  # entities whose last written state a push writer keeps decoded


class WindowWriter:
    """Applies event batches to one window view's tiles in the online store.

    With ``cache=True`` (the stream processor, the view's one writer) states stay in memory between
    batches; without it every batch reads the states it touches first (pushes from any process).
    """

    def __init__(self, view: FeatureView, online: Any, cache: bool = False):
        self.view = view
        self.plan = TilePlan.of(view)
        self.online = online
        self.cache: dict[tuple[Any, ...], dict[str, Any]] | None = {} if cache else None
        # without the cache: the text this writer last stored per entity, with its state, so that a state
        # nobody rewrote since is not decoded again (entries are taken out while a batch changes them)
        self._known: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
        self._version = 0
        self._lock = threading.Lock()

    def apply(self, events: Any) -> ApplyCounts:
        """Fold conformed events into their entities' states and write the changed states; return counts."""
        counts = ApplyCounts()
        if events.num_rows == 0:
            return counts
        codes, keys = _entity_codes(events, self.view.join_keys)
        with self._lock:
            found = self._states(keys)
            states = [found[k] for k in keys]
            counts.applied, counts.duplicates, counts.late = apply_batch(self.plan, states, codes, events)
            counts.entities = len(keys)
            self._write(found, [events.column(k).type for k in self.view.join_keys])
        return counts

    def _write(self, states: dict[tuple[Any, ...], dict[str, Any]], key_types: Sequence[Any]) -> int:
        """Write states under a version newer than any this writer wrote before."""
        import pyarrow as pa

        self._version = max(int(time.time() * 1_000_000), self._version + 1)
        order = list(states)
        plan = self.plan
        table = pa.table({
            **{k: pa.array([key[j] for key in order], key_types[j]) for j, k in enumerate(self.view.join_keys)},
            "__version": pa.array([self._version] * len(order), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "state": pa.array(texts := [dump_state(plan, states[key]) for key in order], pa.string()),
        })
        written = self.online.write(state_view(self.view.name), table, self.view.join_keys, "__version")
        if self.cache is None:
            known = self._known
            for key, text in zip(order, texts):
                if len(known) >= KNOWN_STATES:
                    known.pop(next(iter(known)))
                known[key] = (text, states[key])
        return written

    def settle_positions(self, positions: dict[str, int], key_types: Sequence[Any]) -> int:
        """Mark every cached state as having applied the stream up to positions, and write them all."""
        if not self.cache:
            return 0
        with self._lock:
            for state in self.cache.values():
                state["p"] = dict(positions)
            return self._write(self.cache, key_types)

    def _states(self, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], dict[str, Any]]:
        cache = self.cache
        wanted = keys if cache is None else [k for k in keys if k not in cache]
        found: dict[tuple[Any, ...], dict[str, Any]] = {}
        if wanted:
            stored = self.online.read_rows(state_view(self.view.name), wanted)
            known = self._known
            for key, hit in zip(wanted, stored):
                mine = known.pop(key, None)
                if hit is None:
                    found[key] = self.plan.empty_state()
                else:
                    text = hit[1]["state"]
                    found[key] = mine[1] if mine is not None and mine[0] == text else load_state(self.plan, text)
        if cache is None:
            return found
        cache.update(found)
        return {k: cache[k] for k in keys}


READ_MEMO = 2048  # entities per view whose last read is kept: (stored text, decoded state, values)


def read_window_rows(view: FeatureView, plan: TilePlan, online: Any, keys: Sequence[tuple[Any, ...]],
                     features: Sequence[str], now_us: int) -> tuple[list[list[Any]], list[int | None]]:
    """Return per feature a column of values at now_us, and per key the newest event time applied.

    The store is read every time; when an entity's stored text is what the last read found, its
    decoded state is reused, and so are its values while every window still covers the same tiles.
    Any write changes the text, so nothing stale is ever served.
    """
    from forgeml.features.tiles import read_features

    stored = online.read_rows(state_view(view.name), keys)
    columns: list[list[Any]] = [[None] * len(keys) for _ in features]
    newest: list[int | None] = [None] * len(keys)
    memo = plan.reads
    span = (tuple(features), *(window_start_us(now_us, w, h) // h for w, h in plan.spans),
            *(now_us // h for h in plan.hops))
    for i, hit in enumerate(stored):
        if hit is None:
            values = read_features(plan, None, features, now_us)
        else:
            text = hit[1]["state"]
            held = memo.get(keys[i])
            if held is not None and held[0] == text:
                state = held[1]
                values = [v.copy() if isinstance(v, list) else v for v in held[3]] if held[2] == span else None
            else:
                state, values = load_state(plan, text), None
            newest[i] = state["m"]
            if values is None:
                values = read_features(plan, state, features, now_us)
                with _memo_lock:
                    if len(memo) >= READ_MEMO:
                        memo.pop(next(iter(memo)))
                    memo[keys[i]] = (text, state, span, values)
                values = [v.copy() if isinstance(v, list) else v for v in values]
        for j, value in enumerate(values):
            columns[j][i] = value
    return columns, newest


_memo_lock = threading.Lock()
