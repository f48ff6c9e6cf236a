"""Where monitoring reads from: dataset versions, the serving prediction log, and late labels."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from forgeml.errors import NotFoundError, ValidationError
from forgeml.paths import safe_component


def read_dataset(ref: str, workspace: Any = None) -> Any:
    """Read a registered dataset version ("name@v3") as an Arrow table."""
    try:
        from forgeml.datasets import read_dataset as read
    except ImportError as e:
        raise NotFoundError(f"cannot read dataset {ref!r}: the datasets layer is not available ({e})") from e
    return read(ref, workspace=workspace)


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
    """Return a model's prediction-log rows with ``_ts`` in [start, end) as an Arrow table (serving's reader)."""
    try:
        from forgeml.serving import read_prediction_log as serving_reader
    except ImportError as e:
        raise NotFoundError(f"cannot read the prediction log of {model!r}: serving is not available ({e})") from e
    return serving_reader(model, start=start, end=end, workspace=_workspace(workspace))


def log_labels(model: str, labels: Any, workspace: Any = None) -> int:
    """Store late ground-truth labels (columns ``_request_id``, ``label``, optional row ``_row``); return rows."""
    import pyarrow.parquet as pq

    from forgeml.monitoring.drift import as_table

    table = as_table(labels, "labels")
    missing = [c for c in ("_request_id", "label") if c not in table.column_names]
    if missing:
        raise ValidationError(f"labels need columns _request_id and label; missing {', '.join(missing)}")
    folder = _workspace(workspace).dot / "monitoring" / "labels" / f"model={safe_component(model, 'model name')}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"{uuid.uuid4().hex}.parquet")
    return table.num_rows


def read_labels(model: str, workspace: Any = None) -> Any:
    """Return every label stored for a model (later labels for a request win)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = _workspace(workspace).dot / "monitoring" / "labels" / f"model={safe_component(model, 'model name')}"
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
