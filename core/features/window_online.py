"""Applying events to a window view's online tiles, and reading its features from them."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from forgeml.errors import ValidationError
from forgeml.features.definitions import FeatureView
from forgeml.features.tiles import TilePlan, apply_events, dump_state, empty_state, load_state, state_view

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
        self._version = 0
        self._lock = threading.Lock()

    def apply(self, events: Any) -> ApplyCounts:
        """Fold conformed events into their entities' states and write the changed states; return counts."""
        view = self.view
        counts = ApplyCounts()
        if events.num_rows == 0:
            return counts
        key_cols = [events.column(k).to_pylist() for k in view.join_keys]
        keys = list(zip(*key_cols))
        times = _python_values(events.column(view.timestamp_field))
        values = {a.column: _python_values(events.column(a.column)) for a in view.aggregations if a.column}
        has_pos = PARTITION in events.column_names
        partitions = events.column(PARTITION).to_pylist() if has_pos else None
        offsets = events.column(OFFSET).to_pylist() if has_pos else None
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        with self._lock:
            states = self._states(list(groups))
            for key, rows in groups.items():
                cols = [[values[a.column][i] for i in rows] if a.column else [] for a in view.aggregations]
                applied, dups, late = apply_events(
                    self.plan, states[key], [times[i] for i in rows], cols,
                    [partitions[i] for i in rows] if has_pos else None,
                    [offsets[i] for i in rows] if has_pos else None)
                counts.applied += applied
                counts.duplicates += dups
                counts.late += late
            counts.entities = len(groups)
            self._write(states, [events.column(k).type for k in view.join_keys])
        return counts

    def _write(self, states: dict[tuple[Any, ...], dict[str, Any]], key_types: Sequence[Any]) -> int:
        """Write states under a version newer than any this writer wrote before."""
        import pyarrow as pa

        self._version = max(int(time.time() * 1_000_000), self._version + 1)
        order = list(states)
        table = pa.table({
            **{k: pa.array([key[j] for key in order], key_types[j]) for j, k in enumerate(self.view.join_keys)},
            "__version": pa.array([self._version] * len(order), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "state": pa.array([dump_state(states[key]) for key in order], pa.string()),
        })
        return self.online.write(state_view(self.view.name), table, self.view.join_keys, "__version")

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
            for key, hit in zip(wanted, stored):
                found[key] = empty_state() if hit is None else load_state(self.plan, hit[1]["state"])
        if cache is None:
            return found
        cache.update(found)
        return {k: cache[k] for k in keys}


def read_window_rows(view: FeatureView, plan: TilePlan, online: Any, keys: Sequence[tuple[Any, ...]],
                     features: Sequence[str], now_us: int) -> tuple[list[list[Any]], list[int | None]]:
    """Return per feature a column of values at now_us, and per key the newest event time applied."""
    from forgeml.features.tiles import read_features

    stored = online.read_rows(state_view(view.name), keys)
    columns: list[list[Any]] = [[None] * len(keys) for _ in features]
    newest: list[int | None] = [None] * len(keys)
    for i, hit in enumerate(stored):
        state = None if hit is None else load_state(plan, hit[1]["state"])
        if state is not None:
            newest[i] = state["m"]
        for j, value in enumerate(read_features(plan, state, features, now_us)):
            columns[j][i] = value
    return columns, newest
