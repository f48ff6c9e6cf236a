"""Materialization: the newest value per entity in a time window, copied online from a per-view watermark."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from forgeml.errors import ValidationError
from forgeml.features.definitions import FeatureView


def _micros(value: Any, what: str) -> int | None:
    from forgeml.times import to_utc_micros

    if value is None:
        return None
    try:
        return to_utc_micros(value)
    except ValueError as e:
        raise ValidationError(f"materialize {what}: {value!r} is not an ISO date or datetime") from e


def _iso(micros: int | None) -> str | None:
    return None if micros is None else datetime.fromtimestamp(micros / 1e6, tz=UTC).isoformat()


def latest_rows_sql(view: FeatureView, relation: str, start_us: int | None, end_us: int) -> str:
    """Return DuckDB SQL for each entity's newest row of a view with event time in [start, end)."""
    from forgeml.sql import quote_ident

    keys = ", ".join(quote_ident(k) for k in view.join_keys)
    ts = quote_ident(view.timestamp_field)
    cols = ", ".join(quote_ident(c) for c in (*view.join_keys, view.timestamp_field, *view.feature_names))
    where = f"CAST({ts} AS TIMESTAMPTZ) < make_timestamptz({end_us})"
    if start_us is not None:
        where += f" AND CAST({ts} AS TIMESTAMPTZ) >= make_timestamptz({start_us})"
    return (f"SELECT {cols} FROM {relation} WHERE {where} "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {ts} DESC) = 1")


def materialize_views(store: Any, views: Sequence[FeatureView], start: Any, end: Any,
                      progress: Callable[[str, int, int], None] | None, batch_rows: int) -> list[dict[str, Any]]:
    """Materialize each view; advance its watermark to end; announce it. Repeating a window changes nothing."""
    from forgeml.features.transform import conform, view_relation

    end_us = _micros(end, "--end") if end is not None else int(time.time() * 1_000_000)
    start_us = _micros(start, "--start")
    if start_us is not None and start_us >= end_us:
        raise ValidationError(f"materialize: start {_iso(start_us)} is not before end {_iso(end_us)}")
    results = []
    for view in views:
        from_us = start_us if start_us is not None else store.watermark_us(view.name)
        if from_us is not None and from_us >= end_us:
            results.append({"view": view.name, "start": _iso(from_us), "end": _iso(end_us), "rows": 0})
            if progress:
                progress(view.name, 0, 0)
            continue
        relation = view_relation(view, store.offline, store.workspace.root)
        tables = {}
        if not isinstance(relation, str):
            tables["__rows"], relation = relation, "__rows"
        latest = store.offline.query(latest_rows_sql(view, relation, from_us, end_us), tables)
        latest = conform(view, latest, f"materialize {view.name!r}")
        total = latest.num_rows
        if progress:
            progress(view.name, 0, total)
        done = 0
        for offset in range(0, total, batch_rows):
            chunk = latest.slice(offset, batch_rows)
            store._write_online(view, chunk)
            done += chunk.num_rows
            if progress:
                progress(view.name, done, total)
        store._record_write(view, latest, materialized=total, watermark_us=end_us)
        store.workspace.plugins.on_features_materialized(
            view=view.name, start=_iso(from_us), end=_iso(end_us), rows=total, workspace=store.workspace)
        results.append({"view": view.name, "start": _iso(from_us), "end": _iso(end_us), "rows": total})
    return results
