"""The prediction log: rows appended off the request path and flushed to Parquet that monitors read.

Layout: ``.forgeml/predictions/model=<name>/date=<YYYY-MM-DD>/<uuid>.parquet``, one row per
predicted row, the input feature columns under their own names plus the reserved columns
``_request_id``, ``_ts``, ``_model``, ``_version``, ``_arm``, ``_latency_ms``, ``_prediction``,
``_error``.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import logging
import operator
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml.errors import ValidationError

if TYPE_CHECKING:
    import pyarrow as pa

_MICROS_PER_DAY = 86_400_000_000
_EPOCH_DAY = dt.date(1970, 1, 1)
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
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=dt.UTC)
        # microseconds since the epoch: Arrow turns a list of ints into timestamps without calling Python
        # per value, as it must for datetime objects (holding up the event loop while it does)
        micros = int(ts.timestamp() * 1_000_000)
        self._pending.append((model, version, arm, request_id, micros, latency_ms, inputs, predictions, n, error))

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
        _lower_priority()
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

        groups: dict[tuple[str, int], list[tuple]] = {}
        for rec in records:
            groups.setdefault((rec[0], rec[4] // _MICROS_PER_DAY), []).append(rec)
        for (model, day), recs in groups.items():
            date = (_EPOCH_DAY + dt.timedelta(days=day)).isoformat()
            rows = sum(r[8] for r in recs)
            try:
                table = _chunked_table(recs, pa)
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
                logging.getLogger("forgeml.serving").error("prediction log: %d rows of %s not written: %s", rows,
                                                           model, self.last_error)
            self._pending_rows -= rows


_CHUNK_RECORDS = 256


def _chunked_table(recs: list[tuple], pa: Any) -> pa.Table:
    """Convert records a slice at a time, handing the GIL back between slices.

    Each slice's C loops hold the GIL for well under a millisecond; the whole second's worth at
    once held it for several, which request latency felt.
    """
    import time

    if len(recs) <= _CHUNK_RECORDS:
        return _records_to_table(recs, pa)
    tables = []
    for start in range(0, len(recs), _CHUNK_RECORDS):
        tables.append(_records_to_table(recs[start:start + _CHUNK_RECORDS], pa))
        time.sleep(0)
    return pa.concat_tables(tables, promote_options="permissive")


def _lower_priority() -> None:
    """Make the calling thread yield the CPU to request handling when cores are short (Linux threads)."""
    try:
        # a thread is its own scheduling entity on Linux: this nices the writer, not the server
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass  # not Linux, or not allowed: the writer runs at normal priority


def _uniform_inputs(recs: list[tuple]) -> dict[str, list[Any]] | None:
    """The input columns when every record has the same ones, each one value per row (the usual case).

    Built column by column in C loops: the writer thread holds the GIL while it converts, and a
    record-by-record loop here showed up in the request latency tail. None: use the general merge.
    """
    if not recs:
        return {}
    first = recs[0][6]
    names = [n for n in first if n not in RESERVED]
    keys = first.keys()
    if not names or any(r[6].keys() != keys for r in recs):
        return None
    total = sum(map(operator.itemgetter(8), recs))
    getter = operator.itemgetter(*names)
    per_record = list(map(getter, map(operator.itemgetter(6), recs)))
    if len(names) == 1:
        per_record = [(values,) for values in per_record]
    out: dict[str, list[Any]] = {}
    for name, lists in zip(names, zip(*per_record)):
        col = list(itertools.chain.from_iterable(lists))
        if len(col) != total:
            return None
        out[name] = col
    return out


def _merge_inputs(recs: list[tuple], inputs: dict[str, list[Any]]) -> None:
    """Gather input columns record by record, padding a column a record lacks with nulls."""
    total = 0
    for rec in recs:
        row_inputs, n = rec[6], rec[8]
        for name, values in row_inputs.items():
            if name in RESERVED:
                continue
            col = inputs.get(name)
            if col is None:
                col = inputs[name] = [None] * total
            col.extend(values[:n] if len(values) >= n else list(values) + [None] * (n - len(values)))
        total += n
        for col in inputs.values():
            if len(col) < total:
                col.extend([None] * (total - len(col)))


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list) and value and isinstance(value[0], int | float):
        return float(value[-1]) if len(value) == 2 else float(max(range(len(value)), key=value.__getitem__))
    return None


def _records_to_table(recs: list[tuple], pa: Any) -> pa.Table:
    inputs = _uniform_inputs(recs)
    if inputs is None:
        inputs = {}
        _merge_inputs(recs, inputs)
    if all(r[8] == 1 for r in recs) and all(r[7] is None or len(r[7]) == 1 for r in recs):
        # one row per request, the usual case: each reserved column is one C loop over the records
        def field(i: int) -> list[Any]:
            return list(map(operator.itemgetter(i), recs))

        columns = {"_request_id": field(3), "_ts": field(4), "_model": field(0), "_version": field(1),
                   "_arm": field(2), "_latency_ms": field(5), "_error": field(9),
                   "_prediction": [None if r[7] is None else _as_float(r[7][0]) for r in recs]}
        return _to_table(inputs, columns, pa)
    columns = {name: [] for name in RESERVED}
    for model, version, arm, request_id, ts, latency_ms, _inputs, predictions, n, error in recs:
        columns["_request_id"].extend([request_id] * n)
        columns["_ts"].extend([ts] * n)
        columns["_model"].extend([model] * n)
        columns["_version"].extend([version] * n)
        columns["_arm"].extend([arm] * n)
        columns["_latency_ms"].extend([latency_ms] * n)
        columns["_prediction"].extend([_as_float(p) for p in predictions] if predictions is not None
                                      else [None] * n)
        columns["_error"].extend([error] * n)
    return _to_table(inputs, columns, pa)


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
