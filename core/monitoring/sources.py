"""Where monitoring reads from: dataset versions, the serving prediction log, and late labels."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from forgeml.errors import NotFoundError, ValidationError


def read_dataset(ref: str) -> Any:
    """Read a registered dataset version ("name@v3") as an Arrow table."""
    try:
        from forgeml.datasets import read_dataset as read
    except ImportError as e:
        raise NotFoundError(f"cannot read dataset {ref!r}: the datasets layer is not available ({e})") from e
    return read(ref)


def _workspace(workspace: Any) -> Any:
    if workspace is not None:
        return workspace
    from forgeml.workspace import current

    return current()


def as_utc(value: Any) -> datetime | None:
    """Turn None, a datetime (naive means UTC) or an ISO string into an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as e:
            raise ValidationError(f"not an ISO date/time: {value!r} (use e.g. 2026-11-25T08:00)") from e
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def read_prediction_log(model: str, start: Any = None, end: Any = None, workspace: Any = None) -> Any:
    """Return a model's prediction-log rows with ``_ts`` in [start, end) as an Arrow table."""
    try:
        from forgeml.serving import read_prediction_log as serving_reader
    except ImportError:
        serving_reader = None
    if serving_reader is not None and workspace is None:
        return serving_reader(model, start=start, end=end)
    return read_log_files(_workspace(workspace).dot / "predictions", model, start, end)


def read_log_files(root: Path, model: str, start: Any = None, end: Any = None) -> Any:
    """Read the agreed prediction-log layout (model=NAME/date=YYYY-MM-DD/*.parquet) for [start, end)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    start, end = as_utc(start), as_utc(end)
    folder = root / f"model={model}"
    if not folder.is_dir():
        raise NotFoundError(f"no prediction log for model {model!r} under {root}; has it served any request?")
    tables = []
    for day_dir in sorted(folder.glob("date=*")):
        day = date.fromisoformat(day_dir.name.removeprefix("date="))
        if start is not None and day < start.date() or end is not None and day > end.date():
            continue
        tables.extend(pq.read_table(f, partitioning=None) for f in sorted(day_dir.glob("*.parquet")))
    if not tables:
        return pa.table({"_ts": pa.array([], pa.timestamp("us", tz="UTC"))})
    table = pa.concat_tables(tables, promote_options="permissive")
    ts = table.column("_ts")
    if ts.type.tz is None:
        ts = ts.cast(pa.timestamp(ts.type.unit, tz="UTC"))
        table = table.set_column(table.schema.get_field_index("_ts"), "_ts", ts)
    mask = None
    if start is not None:
        mask = pc.greater_equal(ts, pa.scalar(start, ts.type))
    if end is not None:
        upper = pc.less(ts, pa.scalar(end, ts.type))
        mask = upper if mask is None else pc.and_(mask, upper)
    return table.filter(mask) if mask is not None else table


def log_labels(model: str, labels: Any, workspace: Any = None) -> int:
    """Store late ground-truth labels (columns ``_request_id``, ``label``, optional row ``_row``); return rows."""
    import pyarrow.parquet as pq

    from forgeml.monitoring.drift import as_table

    table = as_table(labels, "labels")
    missing = [c for c in ("_request_id", "label") if c not in table.column_names]
    if missing:
        raise ValidationError(f"labels need columns _request_id and label; missing {', '.join(missing)}")
    folder = _workspace(workspace).dot / "monitoring" / "labels" / f"model={model}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"{uuid.uuid4().hex}.parquet")
    return table.num_rows


def read_labels(model: str, workspace: Any = None) -> Any:
    """Return every label stored for a model (later labels for a request win)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = _workspace(workspace).dot / "monitoring" / "labels" / f"model={model}"
    files = sorted(folder.glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns) if folder.is_dir() else []
    if not files:
        return pa.table({"_request_id": pa.array([], pa.string()), "label": pa.array([], pa.float64())})
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")


def parse_window(window: str) -> timedelta:
    """Parse a window like 15m, 6h, 1d, 2w into a timedelta."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    text = str(window).strip().lower()
    if len(text) < 2 or text[-1] not in units or not text[:-1].replace(".", "", 1).isdigit():
        raise ValidationError(f"window {window!r}: write a number and a unit s, m, h, d or w, e.g. 15m, 6h, 1d")
    value = float(text[:-1])
    if value <= 0:
        raise ValidationError(f"window {window!r} must be positive")
    return timedelta(**{units[text[-1]]: value})


def write_log_rows(workspace: Any, model: str, table: Any) -> Path:
    """Append rows to the prediction log in the agreed layout (one file per day touched); for tests and tools."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    root = _workspace(workspace).dot / "predictions" / f"model={model}"
    days = pc.strftime(table.column("_ts"), format="%Y-%m-%d")
    last = root
    for day in sorted(set(days.to_pylist())):
        part = table.filter(pc.equal(days, pa.scalar(day)))
        folder = root / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        last = folder / f"{uuid.uuid4().hex}.parquet"
        pq.write_table(part, last)
    return last
