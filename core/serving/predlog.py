"""The prediction log: rows appended off the request path and flushed to Parquet that monitors read.

Layout: ``.forgeml/predictions/model=<name>/date=<YYYY-MM-DD>/<uuid>.parquet``, one row per
predicted row, the input feature columns under their own names plus the reserved columns
``_request_id``, ``_ts``, ``_model``, ``_version``, ``_arm``, ``_latency_ms``, ``_prediction``,
``_error``.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml.errors import ValidationError

if TYPE_CHECKING:
    import pyarrow as pa

RESERVED = ("_request_id", "_ts", "_model", "_version", "_arm", "_latency_ms", "_prediction", "_error")


def log_root(workspace: Any) -> Path:
    """Return the folder holding a workspace's prediction log."""
    return Path(workspace.dot) / "predictions"


class PredictionLogger:
    """Takes prediction records without blocking and writes them from a background thread."""

    def __init__(self, root: str | Path, flush_interval_s: float = 1.0, max_pending_rows: int = 50_000):
        self.root = Path(root)
        self.flush_interval_s = flush_interval_s
        self.max_pending_rows = max_pending_rows
        # a deque append wakes no thread: the writer polls on its own clock, so the request path
        # never hands the GIL to the writer (a queue.put per request did, costing ~0.3 ms each)
        self._pending: collections.deque[tuple] = collections.deque()
        self._pending_rows = 0
        self.dropped_rows = 0
        self.written_rows = 0
        self.errors = 0
        self._flushed = threading.Condition()
        self._flush_requests = 0
        self._flush_done = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._kick = threading.Event()
        self.last_error = ""

    def start(self) -> PredictionLogger:
        """Start the writer thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="forgeml-predlog", daemon=True)
            self._thread.start()
        return self

    def log(self, model: str, version: int, arm: str, request_id: str, ts: dt.datetime, latency_ms: float,
            inputs: Mapping[str, Sequence[Any]], predictions: Sequence[Any] | None, n: int,
            error: str | None = None) -> None:
        """Queue one request's rows; when the writer is far behind, count them as dropped instead."""
        if self._pending_rows > self.max_pending_rows:
            self.dropped_rows += n
            return
        self._pending_rows += n
        self._pending.append((model, version, arm, request_id, ts, latency_ms, inputs, predictions, n, error))

    def flush(self, timeout: float = 10.0) -> None:
        """Write everything queued so far and wait until it is on disk."""
        if self._thread is None or not self._thread.is_alive():
            self._write(self._drain())
            return
        with self._flushed:
            self._flush_requests += 1
            target = self._flush_requests
            self._kick.set()
            self._flushed.wait_for(lambda: self._flush_done >= target, timeout)

    def close(self) -> None:
        """Flush and stop the writer thread."""
        self.flush()
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # ------------------------------------------------------------ writer thread
    def _drain(self) -> list[tuple]:
        records = []
        pending = self._pending
        while pending:
            records.append(pending.popleft())
        return records

    def _run(self) -> None:
        while not self._stop.is_set():
            self._kick.wait(self.flush_interval_s)
            self._kick.clear()
            with self._flushed:
                target = self._flush_requests  # read before draining: what a flush queued is drained below
            self._write(self._drain())
            with self._flushed:
                self._flush_done = max(self._flush_done, target)
                self._flushed.notify_all()

    def _write(self, records: list[tuple]) -> None:
        if not records:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        groups: dict[tuple[str, str], list[tuple]] = {}
        for rec in records:
            groups.setdefault((rec[0], rec[4].strftime("%Y-%m-%d")), []).append(rec)
        for (model, date), recs in groups.items():
            rows = sum(r[8] for r in recs)
            try:
                table = _records_to_table(recs, pa)
                folder = self.root / f"model={model}" / f"date={date}"
                folder.mkdir(parents=True, exist_ok=True)
                tmp = folder / f".{uuid.uuid4().hex}.tmp"
                pq.write_table(table, tmp)
                tmp.rename(folder / f"{uuid.uuid4().hex}.parquet")
                self.written_rows += rows
            except (OSError, pa.ArrowException, ValueError, TypeError) as e:
                # a log write failing must never fail serving; it is counted and shown in /metrics
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"
            self._pending_rows -= rows


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list) and value and isinstance(value[0], int | float):
        return float(value[-1]) if len(value) == 2 else float(max(range(len(value)), key=value.__getitem__))
    return None


def _records_to_table(recs: list[tuple], pa: Any) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in RESERVED}
    inputs: dict[str, list[Any]] = {}
    total = 0
    for model, version, arm, request_id, ts, latency_ms, row_inputs, predictions, n, error in recs:
        for name, values in row_inputs.items():
            if name in columns:
                continue
            col = inputs.get(name)
            if col is None:
                col = inputs[name] = [None] * total
            col.extend(values[:n] if len(values) >= n else list(values) + [None] * (n - len(values)))
        total += n
        for col in inputs.values():
            if len(col) < total:
                col.extend([None] * (total - len(col)))
        columns["_request_id"].extend([request_id] * n)
        columns["_ts"].extend([ts] * n)
        columns["_model"].extend([model] * n)
        columns["_version"].extend([version] * n)
        columns["_arm"].extend([arm] * n)
        columns["_latency_ms"].extend([latency_ms] * n)
        columns["_prediction"].extend([_as_float(p) for p in predictions] if predictions is not None
                                      else [None] * n)
        columns["_error"].extend([error] * n)
    arrays: dict[str, Any] = {}
    for name, values in inputs.items():
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
    arrays["_request_id"] = pa.array(columns["_request_id"], pa.string())
    arrays["_ts"] = pa.array(columns["_ts"], pa.timestamp("us", tz="UTC"))
    arrays["_model"] = pa.array(columns["_model"], pa.string())
    arrays["_version"] = pa.array(columns["_version"], pa.int64())
    arrays["_arm"] = pa.array(columns["_arm"], pa.string())
    arrays["_latency_ms"] = pa.array(columns["_latency_ms"], pa.float64())
    arrays["_prediction"] = pa.array(columns["_prediction"], pa.float64())
    arrays["_error"] = pa.array(columns["_error"], pa.string())
    return pa.table(arrays)


def _as_utc(value: Any, name: str) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError as e:
            raise ValidationError(f"{name}={value!r} is not an ISO date or timestamp") from e
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise ValidationError(f"{name} must be a datetime, a date or an ISO string, got {type(value).__name__}")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def read_prediction_log(model: str, start: Any = None, end: Any = None, workspace: Any = None) -> pa.Table:
    """Return a model's logged predictions with ``_ts`` in [start, end) as one Arrow table."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if workspace is None:
        from forgeml.workspace import current

        workspace = current()
    lo, hi = _as_utc(start, "start"), _as_utc(end, "end")
    folder = log_root(workspace) / f"model={model}"
    tables = []
    if folder.is_dir():
        for day in sorted(folder.glob("date=*")):
            date = dt.date.fromisoformat(day.name.split("=", 1)[1])
            if lo is not None and date < lo.date():
                continue
            if hi is not None and date > hi.date():
                continue
            for path in sorted(day.glob("*.parquet")):
                tables.append(pq.read_table(path))
    if not tables:
        return _records_to_table([], pa)
    table = pa.concat_tables(tables, promote_options="permissive")
    if lo is not None:
        table = table.filter(pc.greater_equal(table["_ts"], pa.scalar(lo, pa.timestamp("us", tz="UTC"))))
    if hi is not None:
        table = table.filter(pc.less(table["_ts"], pa.scalar(hi, pa.timestamp("us", tz="UTC"))))
    return table.sort_by("_ts")
