"""Point-in-time window aggregations offline: a WindowRequest that each offline store compiles for its engine.

A store with ``window_join`` (Spark) compiles the request itself; for the others it becomes one DuckDB
window query over the events and the entity rows (the contract's SQL dialect). There, entity rows are unioned with the view's events, ordered by time per key, and each feature is a
window aggregate over a RANGE frame that ends at the row (peers at the same instant included) and
starts at the hop-aligned window start (see :mod:`forgeml.features.aggregations`). Later events
never enter a frame, and every entity row comes back, in order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from forgeml.contracts import WindowAggregate, WindowRequest
from forgeml.features.aggregations import window_features
from forgeml.features.definitions import FeatureView, FileSource, PushSource, SqlSource, StreamSource

if TYPE_CHECKING:
    import pyarrow as pa

ROW = "__forgeml_row"
DUCK_TYPES = {"int32": "INTEGER", "int64": "BIGINT", "float32": "FLOAT", "float64": "DOUBLE", "bool": "BOOLEAN",
              "string": "VARCHAR", "timestamp": "TIMESTAMPTZ"}
POSITION = ("_partition", "_offset")  # columns of stream-logged events, which de-duplicate replays


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def event_columns(view: FeatureView) -> list[str]:
    """Return the event columns a window view reads: join keys, event time and aggregated columns."""
    cols = [*view.join_keys, view.timestamp_field]
    for agg in view.aggregations:
        if agg.column and agg.column not in cols:
            cols.append(agg.column)
    return cols


def event_relation(view: FeatureView, offline: Any, root: Any = None) -> str | None:
    """Return DuckDB SQL for a window view's raw events: its batch source plus pushed or streamed events."""
    from forgeml.features.transform import source_sql

    source = view.source
    cols = ", ".join(_q(c) for c in event_columns(view))
    parts = []
    batch = source.batch_source if isinstance(source, PushSource | StreamSource) else source
    if isinstance(batch, FileSource | SqlSource):
        parts.append(f"SELECT {cols} FROM {source_sql(batch, offline, root)}")
    if isinstance(source, PushSource | StreamSource) and offline.has_table(view.name):
        logged = offline.table_relation(view.name)
        if isinstance(source, StreamSource):
            # a replay after a crash may log a stream record twice; its position keeps one copy
            parts.append(f"SELECT {cols} FROM {logged} QUALIFY "
                         f"row_number() OVER (PARTITION BY {_q(POSITION[0])}, {_q(POSITION[1])}) = 1")
        else:
            parts.append(f"SELECT {cols} FROM {logged}")
    if not parts:
        return None
    # every part selects the same columns in the same order, so a positional UNION ALL is exact on any engine
    return "(" + " UNION ALL ".join(f"({p})" for p in parts) + ")"


def window_request(view: FeatureView, features: list[str], relation: Any) -> WindowRequest:
    """Return the engine-neutral description of a window view's requested features over its events."""
    wanted = [w for w in window_features(view.aggregations) if w.name in features]
    columns = {agg.column: agg.dtype for agg in view.aggregations if agg.column}
    return WindowRequest(relation, tuple(view.join_keys), view.timestamp_field, tuple(columns.items()),
                         tuple(WindowAggregate(w.name, w.aggregation.function, w.aggregation.column, w.window_us,
                                               w.hop_us, w.aggregation.n) for w in wanted))


def _aggregate(feature: WindowAggregate, column: str, frame: str) -> str:
    fn = feature.function
    c = _q(column) if column else ""
    if fn == "count":
        return f"count(*) FILTER (WHERE __q = 0) OVER {frame}"
    if fn in ("sum", "mean", "stddev"):
        sql = {"sum": "sum", "mean": "avg", "stddev": "stddev_samp"}[fn]
        return f"{sql}(CAST({c} AS DOUBLE)) OVER {frame}"
    if fn in ("min", "max"):
        return f"{fn}({c}) OVER {frame}"
    if fn == "count_distinct":
        return f"count(DISTINCT {c}) OVER {frame}"
    nonnull = f"FILTER (WHERE {c} IS NOT NULL)"
    if fn == "first":
        return f"arg_min({c}, (__t, {c})) {nonnull} OVER {frame}"
    if fn == "last":
        return f"arg_max({c}, (__t, {c})) {nonnull} OVER {frame}"
    return f"coalesce(max_by({c}, (__t, {c}), {feature.n}) {nonnull} OVER {frame}, [])"


def window_sql(request: WindowRequest, relation: str, lo_us: int | None, hi_us: int | None) -> str:
    """Return DuckDB SQL computing a request's aggregates for the rows of ``__entity`` (keys, __t, row number)."""
    wanted = request.aggregates
    keys = ", ".join(_q(k) for k in request.join_keys)
    aliases = {c: f"__c{i}" for i, (c, _) in enumerate(request.columns)}
    ts = f"epoch_us(CAST({_q(request.timestamp_field)} AS TIMESTAMPTZ))"
    span = max(w.window_us + w.hop_us for w in wanted)
    where = [f"{ts} IS NOT NULL"]
    if hi_us is not None:
        where.append(f"{ts} <= {int(hi_us)}")
    if lo_us is not None:
        where.append(f"{ts} >= {int(lo_us) - span}")
    typed = {c: DUCK_TYPES[dtype] for c, dtype in request.columns}
    ev_cols = ", ".join([*(_q(k) for k in request.join_keys), f"{ts} AS __t", "0 AS __q", f"NULL::BIGINT AS {ROW}",
                         *(f"CAST({_q(c)} AS {typed[c]}) AS {a}" for c, a in aliases.items())])
    frames: dict[tuple[int, int], str] = {}
    selects = [ROW, "__q"]
    for w in wanted:
        frame = frames.setdefault((w.window_us, w.hop_us), f"__w{len(frames)}")
        selects.append(f"{_aggregate(w, aliases.get(w.column or '', ''), frame)} AS {_q(w.name)}")
    windows = ", ".join(
        f"{name} AS (PARTITION BY {keys} ORDER BY __t RANGE BETWEEN ({win} + ((__t - {win}) % {hop} + {hop}) % {hop}) "
        f"PRECEDING AND CURRENT ROW)" for (win, hop), name in frames.items())
    return (f"WITH __ev AS (SELECT {ev_cols} FROM {relation} WHERE {' AND '.join(where)}), "
            f"__u AS (SELECT * FROM __ev UNION ALL BY NAME SELECT *, 1 AS __q FROM __entity) "
            f"SELECT * EXCLUDE (__q) FROM (SELECT {', '.join(selects)} FROM __u WINDOW {windows}) WHERE __q = 1")


def historical_windows(view: FeatureView, features: list[str], entity_rows: pa.Table, micros: pa.Array,
                       offline: Any, root: Any = None) -> pa.Table:
    """Return one column per requested window feature, as of each entity row's time, in entity-row order."""
    import pyarrow as pa

    from forgeml.features.definitions import arrow_type

    relation: Any = event_relation(view, offline, root)
    if relation is None:  # no events anywhere yet: an empty relation with the declared columns
        empty = {k: pa.array([], arrow_type(e.dtype)) for e in view.entities for k in e.join_keys}
        empty[view.timestamp_field] = pa.array([], pa.timestamp("us", tz="UTC"))
        for agg in view.aggregations:
            if agg.column:
                empty[agg.column] = pa.array([], arrow_type(agg.dtype))
        relation = pa.table(empty)
    return window_aggregates(offline, entity_rows.select(list(view.join_keys)), micros,
                             window_request(view, features, relation))


def window_aggregates(offline: Any, keys: pa.Table, micros: pa.Array, request: WindowRequest) -> pa.Table:
    """Return a request's aggregates as of each entity row, in order: the store's own ``window_join``, else
    DuckDB's window query through ``query``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if hasattr(offline, "window_join"):  # the store compiles the request for its own engine
        return offline.window_join(keys, micros, request)
    tables = {"__entity": keys.append_column("__t", micros).append_column(
        ROW, pa.array(np.arange(keys.num_rows, dtype=np.int64)))}
    relation = request.relation
    if isinstance(relation, pa.Table):
        tables["__events"], relation = relation, "__events"
    bounds = pc.min_max(micros)
    joined = offline.query(window_sql(request, relation, bounds["min"].as_py(), bounds["max"].as_py()), tables)
    order = np.empty(joined.num_rows, dtype=np.int64)
    order[joined.column(ROW).to_numpy()] = np.arange(joined.num_rows, dtype=np.int64)
    return joined.drop_columns([ROW]).take(pa.array(order))
