"""The prediction log: rows appended off the request path and flushed to Parquet that monitors read.

Layout: ``.forgeml/predictions/model=<name>/date=<YYYY-MM-DD>/<uuid>.parquet``, one row per
predicted row, the input feature columns under their own names plus the reserved columns
``_request_id``, ``_ts``, ``_model``, ``_version``, ``_arm``, ``_latency_ms``, ``_prediction``,
``_error``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml.errors import ValidationError
from forgeml.paths import safe_component
from forgeml.pii.files import read_parquet, write_parquet

if TYPE_CHECKING:
    import pyarrow as pa

_MICROS_PER_DAY = 86_400_000_000
_EPOCH_DAY = dt.date(1970, 1, 1)
RESERVED = ("_request_id", "_ts", "_model", "_version", "_arm", "_latency_ms", "_prediction", "_error")


def log_root(workspace: Any) -> Path:
    """Return the folder holding a workspace's prediction log."""
    return Path(workspace.dot) / "predictions"


class PredictionLogger:
    """Takes prediction records without blocking and writes them from a background thread.

    ``log`` appends a request's values to per-(model, day) column lists right away, a few
    microseconds on the request path; the writer thread then only turns whole columns into Arrow
    arrays. Turning a second's worth of per-request records into columns there instead held the
    GIL long enough to show in the request latency tail.
    """

    def __init__(self, root: str | Path, flush_interval_s: float = 1.0, max_pending_rows: int = 50_000,
                 drop_columns: frozenset[str] = frozenset(), keyring: Any = None):
        self.root = Path(root)
        self.keyring = keyring  # encrypts each file at rest when [privacy] encrypt_at_rest is on
        self.drop_columns = drop_columns  # PII columns ([privacy]) that never reach the log files
        self.flush_interval_s = flush_interval_s
        self.max_pending_rows = max_pending_rows
        # the writer polls on its own clock: the request path wakes no thread and never hands it the GIL
        self._blocks: dict[tuple[str, int], _Block] = {}
        self._lock = threading.Lock()
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

    @property
    def pending_rows(self) -> int:
        """Rows taken but not yet written."""
        return self._pending_rows

    def log(self, model: str, version: int, arm: str, request_id: str, ts: dt.datetime, latency_ms: float,
            inputs: Mapping[str, Sequence[Any]], predictions: Sequence[Any] | None, n: int,
            error: str | None = None) -> None:
        """Take one request's rows; when the writer is far behind, count them as dropped instead."""
        if self._pending_rows > self.max_pending_rows:
            self.dropped_rows += n
            return
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=dt.UTC)
        # microseconds since the epoch: Arrow turns a list of ints into timestamps in C, where a list
        # of datetime objects costs a Python call per value
        micros = int(ts.timestamp() * 1_000_000)
        key = (model, micros // _MICROS_PER_DAY)
        with self._lock:
            block = self._blocks.get(key)
            if block is None:
                block = self._blocks[key] = _Block()
            block.add(version, arm, request_id, micros, latency_ms, inputs, predictions, n, error)
            self._pending_rows += n

    def flush(self, timeout: float = 10.0) -> None:
        """Write everything taken so far and wait until it is on disk."""
        if self._thread is None or not self._thread.is_alive():
            self._write(self._take())
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
    def _take(self) -> dict[tuple[str, int], _Block]:
        with self._lock:
            blocks, self._blocks = self._blocks, {}
        return blocks

    def _run(self) -> None:
        while not self._stop.is_set():
            self._kick.wait(self.flush_interval_s)
            self._kick.clear()
            with self._flushed:
                target = self._flush_requests  # read before taking: what a flush asked for is taken below
            self._write(self._take())
            with self._flushed:
                self._flush_done = max(self._flush_done, target)
                self._flushed.notify_all()

    def _write(self, blocks: dict[tuple[str, int], _Block]) -> None:
        if not blocks:
            return
        import pyarrow as pa

        for (model, day), block in blocks.items():
            date = (_EPOCH_DAY + dt.timedelta(days=day)).isoformat()
            try:
                table = block.table(model, pa)
                if self.drop_columns:
                    table = table.drop_columns([c for c in table.column_names if c in self.drop_columns])
                folder = self.root / f"model={model}" / f"date={date}"
                folder.mkdir(parents=True, exist_ok=True)
                write_parquet(table, folder / f"{uuid.uuid4().hex}.parquet", self.keyring)
                self.written_rows += block.rows
            except (OSError, pa.ArrowException, ValueError, TypeError) as e:
                # a log write failing must never fail serving; it is counted and shown in /metrics
                self.errors += 1
                cause = " ".join(str(e).split())
                kind = "StorageError" if isinstance(e, OSError) else type(e).__name__
                self.last_error = f"{kind}: prediction log: {block.rows} rows of {model} not written: {cause}"
                logging.getLogger("forgeml.serving").error("%s", self.last_error)
            with self._lock:
                self._pending_rows -= block.rows


class _Block:
    """One model's rows of one day, column by column, as requests log them."""

    __slots__ = ("inputs", "request_id", "ts", "version", "arm", "latency_ms", "prediction", "error", "rows")

    def __init__(self) -> None:
        self.inputs: dict[str, list[Any]] = {}
        self.request_id: list[str] = []
        self.ts: list[int] = []
        self.version: list[int] = []
        self.arm: list[str] = []
        self.latency_ms: list[float] = []
        self.prediction: list[float | None] = []
        self.error: list[str | None] = []
        self.rows = 0

    def add(self, version: int, arm: str, request_id: str, micros: int, latency_ms: float,
            inputs: Mapping[str, Sequence[Any]], predictions: Sequence[Any] | None, n: int,
            error: str | None) -> None:
        """Append one request's rows (called under the logger's lock)."""
        cols = self.inputs
        if cols.keys() == inputs.keys() and all(len(v) == n for v in inputs.values()):
            for name, values in inputs.items():  # the usual request: the same columns as the last one
                cols[name].extend(values)
        else:
            self._merge(inputs, n)
        self.rows += n
        preds = [None] * n if predictions is None else [_as_float(p) for p in predictions[:n]]
        preds += [None] * (n - len(preds))
        self.prediction += preds
        if n == 1:
            self.request_id.append(request_id)
            self.ts.append(micros)
            self.version.append(version)
            self.arm.append(arm)
            self.latency_ms.append(latency_ms)
            self.error.append(error)
        else:
            self.request_id += [request_id] * n
            self.ts += [micros] * n
            self.version += [version] * n
            self.arm += [arm] * n
            self.latency_ms += [latency_ms] * n
            self.error += [error] * n

    def _merge(self, inputs: Mapping[str, Sequence[Any]], n: int) -> None:
        """Append columns that differ from the block's: new ones start as nulls, absent ones get nulls."""
        cols = self.inputs
        before, after = self.rows, self.rows + n
        for name, values in inputs.items():
            if name in RESERVED:
                continue
            col = cols.get(name)
            if col is None:
                col = cols[name] = [None] * before
            col.extend(values[:n] if len(values) >= n else list(values) + [None] * (n - len(values)))
        for col in cols.values():
            if len(col) < after:
                col.extend([None] * (after - len(col)))

    def table(self, model: str, pa: Any) -> pa.Table:
        """The block as an Arrow table: input columns, then the reserved ones."""
        return _to_table(self.inputs, {
            "_request_id": self.request_id, "_ts": self.ts, "_model": [model] * self.rows,
            "_version": self.version, "_arm": self.arm, "_latency_ms": self.latency_ms,
            "_prediction": self.prediction, "_error": self.error}, pa)


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list) and value and isinstance(value[0], int | float):
        return float(value[-1]) if len(value) == 2 else float(max(range(len(value)), key=value.__getitem__))
    return None


def _array(values: list[Any], pa: Any, type: Any = None) -> Any:
    """An Arrow array of Python values, with its type worked out here in C passes.

    Arrow's own inference over a list of Python values (or an untyped numpy array) slows to a crawl,
    holding the GIL for tens of milliseconds, while the event loop thread runs beside it.
    """
    import numpy as np

    kinds = set(map(type_of, values))
    if kinds and kinds <= _NUMBER_KINDS:
        wide = float in kinds or (type is not None and pa.types.is_floating(type))
        try:
            arr = np.array(values, dtype=np.float64 if wide else np.int64)
            return pa.array(arr, type=type or (pa.float64() if wide else pa.int64()))
        except OverflowError:  # an integer beyond 64 bits: Arrow's own path says so
            pass
    if type is None and len(kinds) == 1:
        kind = next(iter(kinds))
        type = pa.string() if kind is str else pa.bool_() if kind is bool else None
    return pa.array(values, type=type)


type_of = type
_NUMBER_KINDS = frozenset((int, float))


def _to_table(inputs: dict[str, list[Any]], columns: dict[str, list[Any]], pa: Any) -> pa.Table:
    arrays: dict[str, Any] = {}
    for name, values in inputs.items():
        try:
            arrays[name] = _array(values, pa)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
    arrays["_request_id"] = pa.array(columns["_request_id"], pa.string())
    arrays["_ts"] = pa.array(columns["_ts"], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    arrays["_model"] = pa.array(columns["_model"], pa.string())
    arrays["_version"] = pa.array(columns["_version"], pa.int64())
    arrays["_arm"] = pa.array(columns["_arm"], pa.string())
    arrays["_latency_ms"] = _array(columns["_latency_ms"], pa, pa.float64())
    arrays["_prediction"] = _array(columns["_prediction"], pa, pa.float64())
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

    if workspace is None:
        from forgeml.workspace import current

        workspace = current()
    lo, hi = _as_utc(start, "start"), _as_utc(end, "end")
    keyring = workspace.encryption_keyring()
    folder = log_root(workspace) / f"model={safe_component(model, 'model name')}"
    tables = []
    if folder.is_dir():
        for day in sorted(folder.glob("date=*")):
            date = dt.date.fromisoformat(day.name.split("=", 1)[1])
            if lo is not None and date < lo.date():
                continue
            if hi is not None and date > hi.date():
                continue
            for path in sorted(day.glob("*.parquet")):
                tables.append(read_parquet(path, keyring))
    if not tables:
        return _to_table({}, {name: [] for name in RESERVED}, pa)
    table = pa.concat_tables(tables, promote_options="permissive")
    if lo is not None:
        table = table.filter(pc.greater_equal(table["_ts"], pa.scalar(lo, pa.timestamp("us", tz="UTC"))))
    if hi is not None:
        table = table.filter(pc.less(table["_ts"], pa.scalar(hi, pa.timestamp("us", tz="UTC"))))
    return table.sort_by("_ts")
