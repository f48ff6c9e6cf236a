"""Window aggregations compiled for Spark: a WindowRequest becomes one range join and one group-by.

DuckDB computes them with RANGE frames whose start depends on each row (the hop-aligned window start);
Spark's frames take constant bounds only. Here each entity row is joined with its key's events in
``[t - longest reach, t]`` (keys compared null-safely, as a window partition groups nulls) and grouped
by the entity row: each aggregate keeps only the events at or after its own hop-aligned start. A left
join keeps entity rows without events (count 0, other aggregates null, last_n an empty list).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from forgeml.contracts import WindowAggregate, WindowRequest
from forgeml.storage.parquet_tables import ROW

SPARK_TYPES = {"int32": "int", "int64": "bigint", "float32": "float", "float64": "double", "bool": "boolean",
               "string": "string", "timestamp": "timestamp"}


def _col(name: str) -> Any:
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def window_frame(store: Any, keys: pa.Table, times_us: pa.Array, request: WindowRequest, views: list[Any]) -> Any:
    """Return a Spark DataFrame of the request's aggregates per entity row (column ROW is the row number)."""
    import numpy as np
    import pyarrow.compute as pc
    from pyspark.sql import functions as F

    entity = pa.table({**{f"__k{j}": keys.column(k) for j, k in enumerate(request.join_keys)},
                       "__t": pc.cast(times_us, pa.int64()),
                       ROW: pa.array(np.arange(keys.num_rows, dtype=np.int64))})
    entities = store.entity_frame(entity, views)
    key_types = {f.name: f.dataType for f in entities.schema.fields}
    ts = F.unix_micros(_col(request.timestamp_field).cast("timestamp"))
    events = store.relation_frame(request.relation, views).select(
        *[_col(k).cast(key_types[f"__k{j}"]).alias(f"__e{j}") for j, k in enumerate(request.join_keys)],
        ts.alias("__s"),
        *[_col(c).cast(SPARK_TYPES[dtype]).alias(f"__c{i}") for i, (c, dtype) in enumerate(request.columns)])
    reach = max(a.window_us + a.hop_us for a in request.aggregates)
    bounds = pc.min_max(times_us)
    keep = F.col("__s").isNotNull()
    if bounds["max"].as_py() is not None:  # events no entity row can reach never enter the join
        keep = keep & (F.col("__s") <= bounds["max"].as_py()) & (F.col("__s") >= bounds["min"].as_py() - reach)
    events = events.where(keep)
    on = (F.col("__s") <= F.col("__t")) & (F.col("__s") >= F.col("__t") - reach)
    for j in range(len(request.join_keys)):
        on = on & F.col(f"__k{j}").eqNullSafe(F.col(f"__e{j}"))
    columns = {c: f"__c{i}" for i, (c, _) in enumerate(request.columns)}
    aggregates = [_aggregate(a, columns.get(a.column or "", "")).alias(a.name) for a in request.aggregates]
    return entities.join(events, on, "left").groupBy(ROW).agg(*aggregates)


def _aggregate(agg: WindowAggregate, column: str) -> Any:
    """Return the Spark aggregate of one window feature over the joined rows (event columns null when none)."""
    from pyspark.sql import functions as F

    edge = F.col("__t") - F.lit(agg.window_us)
    inside = F.col("__s") >= edge - F.pmod(edge, F.lit(agg.hop_us))  # the hop-aligned start, as online tiles
    fn = agg.function
    if fn == "count":
        return F.count(F.when(inside, F.lit(1)))
    c = F.col(column)
    if fn in ("sum", "mean", "stddev"):
        numeric = F.when(inside, c.cast("double"))
        return {"sum": F.sum, "mean": F.avg, "stddev": F.stddev_samp}[fn](numeric)
    if fn in ("min", "max"):
        return (F.min if fn == "min" else F.max)(F.when(inside, c))
    if fn == "count_distinct":
        return F.size(F.collect_set(F.when(inside, c)))  # one pass: a DISTINCT aggregate would expand every row
    valued = inside & c.isNotNull()
    ordered = F.when(valued, F.struct(F.col("__s").alias("t"), c.alias("v")))  # time, then value, as DuckDB's tuple
    if fn in ("first", "last"):
        return (F.min_by if fn == "first" else F.max_by)(F.when(valued, c), ordered)
    if fn == "last_n":
        newest = F.sort_array(F.collect_list(ordered), asc=False)
        return F.slice(F.transform(newest, lambda pair: pair["v"]), 1, agg.n)
    from forgeml.errors import ValidationError

    raise ValidationError(f"window aggregation {fn!r} of {agg.name!r} is not supported by the Spark offline store")

