"""The one transformation path: the same SQL or function turns source rows into feature rows everywhere.

Offline retrieval, materialization, push and on-demand features all call into this module, so a
training set and a served value come out of the same code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from forgeml.errors import ValidationError
from forgeml.features.definitions import (
    FeatureView,
    FileSource,
    OnDemandFeatureView,
    PushSource,
    SqlSource,
    Transformation,
    arrow_type,
)

if TYPE_CHECKING:
    import pyarrow as pa


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def source_sql(source: FileSource | SqlSource, offline: Any, root: Any = None) -> str:
    """Return DuckDB SQL reading a batch source's raw rows (relative file paths start at the workspace root)."""
    from pathlib import Path

    if isinstance(source, SqlSource):
        return f"({source.query})"
    path = source.path
    if "://" in path:
        offline.register_filesystem_for(path)
    elif root is not None and not Path(path).is_absolute():
        path = str(Path(root) / path)
    is_folder = not any(ch in path for ch in "*?[") and not path.lower().endswith((".parquet", ".csv", ".gz", ".pq"))
    if source.file_format == "csv":
        pattern = f"{path.rstrip('/')}/**/*.csv" if is_folder else path
        return f"read_csv({_quote(pattern)}, auto_detect = true, union_by_name = true)"
    pattern = f"{path.rstrip('/')}/**/*.parquet" if is_folder else path
    return f"read_parquet({_quote(pattern)}, hive_partitioning = true, union_by_name = true)"


def run_transformation(transformation: Transformation, table: pa.Table, offline: Any) -> pa.Table:
    """Apply a transformation to an Arrow table of source rows (SQL sees it as the relation `source`)."""
    import pyarrow as pa

    if transformation.sql is not None:
        return offline.query(f"SELECT * FROM ({transformation.sql})", {"source": table})
    fn = transformation.callable()
    if transformation.mode == "arrow":
        out = fn(table)
    else:
        out = fn(table.to_pandas())
    if isinstance(out, pa.Table):
        return out
    try:
        return pa.Table.from_pandas(out, preserve_index=False)
    except (TypeError, pa.ArrowException) as e:
        raise ValidationError(f"transformation {transformation.ref and transformation.ref['qualname']} must return "
                              f"a pandas DataFrame or Arrow table: {e}") from e


def conform(view: FeatureView, table: pa.Table, where: str) -> pa.Table:
    """Select a view's keys, timestamp and features from rows and cast them to the declared dtypes."""
    import pyarrow as pa
    import pyarrow.compute as pc

    needed = [*view.join_keys, view.timestamp_field, *view.feature_names]
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise ValidationError(f"{where}: rows for view {view.name!r} lack column {missing[0]!r} "
                              f"(needed: {', '.join(needed)})")
    ts = table.column(view.timestamp_field)
    if not pa.types.is_timestamp(ts.type):
        raise ValidationError(f"{where}: {view.timestamp_field!r} must hold timestamps, got {ts.type}")
    if ts.type.tz is None:
        raise ValidationError(f"{where}: {view.timestamp_field!r} has timestamps without a time zone; make them "
                              f"aware, e.g. pandas: df[col] = df[col].dt.tz_localize('UTC')")
    columns = {k: table.column(k) for k in view.join_keys}
    columns[view.timestamp_field] = pc.cast(ts, pa.timestamp("us", tz="UTC"), safe=False)
    for feature in view.features:
        columns[feature.name] = cast_declared(table.column(feature.name), feature.dtype,
                                              f"{where}: feature {view.name}:{feature.name}")
    return pa.table(columns)


def cast_declared(col: Any, dtype: str, what: str) -> Any:
    """Cast a column to a declared dtype, or raise a ValidationError naming what holds what."""
    import pyarrow as pa
    import pyarrow.compute as pc

    target = arrow_type(dtype)
    if col.type == target:
        return col
    try:
        return pc.cast(col, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise ValidationError(f"{what} is declared {dtype} but the rows hold {col.type} that cannot be converted "
                              f"({e})") from e


def view_relation(view: FeatureView, offline: Any, root: Any = None) -> str | pa.Table:
    """Return a view's feature rows for DuckDB (SQL text, or an Arrow table for Python transformations)."""
    import pyarrow as pa

    source = view.source
    parts: list[str | pa.Table] = []
    batch = source.batch_source if isinstance(source, PushSource) else source
    if batch is not None:
        raw = source_sql(batch, offline, root)
        t = view.transformation
        if t is None:
            parts.append(raw)
        elif t.sql is not None:
            parts.append(f"(WITH source AS (SELECT * FROM {raw}) SELECT * FROM ({t.sql}))")
        else:
            rows = offline.query(f"SELECT * FROM {raw}")
            parts.append(conform(view, run_transformation(t, rows, offline), f"view {view.name!r}"))
    if isinstance(source, PushSource) and offline.has_table(view.name):
        parts.append(offline.table_relation(view.name))  # pushed rows are stored already transformed
    if not parts:
        empty = pa.table({**{k: pa.array([], arrow_type(e.dtype)) for e in view.entities for k in e.join_keys},
                          view.timestamp_field: pa.array([], pa.timestamp("us", tz="UTC")),
                          **{f.name: pa.array([], arrow_type(f.dtype)) for f in view.features}})
        return empty
    if len(parts) == 1:
        return parts[0]
    cols = ", ".join(f'"{c}"' for c in (*view.join_keys, view.timestamp_field, *view.feature_names))
    tables = [p for p in parts if not isinstance(p, str)]
    if tables:  # a pushed table next to a Python-transformed batch: union them in Arrow
        pushed = offline.query(f"SELECT {cols} FROM {offline.table_relation(view.name)}")
        return pa.concat_tables([conform(view, tables[0], view.name), conform(view, pushed, view.name)])
    return "(" + " UNION ALL BY NAME ".join(f"SELECT {cols} FROM {p}" for p in parts) + ")"


def transform_pushed(view: FeatureView, table: pa.Table, offline: Any) -> pa.Table:
    """Turn pushed raw rows into the view's conformed feature rows."""
    if view.transformation is not None:
        table = run_transformation(view.transformation, table, offline)
    return conform(view, table, f"push to {view.name!r}")


def run_on_demand(odfv: OnDemandFeatureView, inputs: pa.Table, offline: Any) -> pa.Table:
    """Compute an on-demand view's features from a table of request data and stored features."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = run_transformation(odfv.transformation, inputs, offline)
    columns = {}
    for feature in odfv.features:
        if feature.name not in out.column_names:
            raise ValidationError(f"on-demand view {odfv.name!r}: its transformation did not return "
                                  f"{feature.name!r}")
        col = out.column(feature.name)
        target = arrow_type(feature.dtype)
        columns[feature.name] = col if col.type == target else pc.cast(col, target)
    if out.num_rows != inputs.num_rows:
        raise ValidationError(f"on-demand view {odfv.name!r}: its transformation returned {out.num_rows} rows "
                              f"for {inputs.num_rows}; it must return one row per input row")
    return pa.table(columns)
