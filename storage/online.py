"""The default online store: one SQLite row per (view, entity key) holding the latest values as one JSON payload."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
import time
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from forgeml.contracts import Holding, Subject
from forgeml.errors import StorageError, ValidationError

KEY_SEPARATOR = "\x1f"
TIMESTAMP_COLUMN = "_event_timestamp"
READ_CHUNK = 4000  # most keys per IN (...) statement; sqlite3 caches one prepared statement per size


def entity_key(values: Sequence[Any]) -> str:
    """Encode a tuple of join-key values as the stored key text (the same for Arrow and Python values)."""
    if len(values) == 1:
        return str(values[0])
    return KEY_SEPARATOR.join(map(str, values))


def subject_holdings(place: str, keys: Sequence[tuple[str, Any]]) -> list[Holding]:
    """Return one Holding per view from (view, key) pairs of a subject's rows."""
    counts: dict[str, int] = {}
    for view, _ in keys:
        counts[view] = counts.get(view, 0) + 1
    return [Holding(place, view, rows) for view, rows in counts.items()]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store a {type(value).__name__} online")


_dumps = json.JSONEncoder(default=_json_default, separators=(",", ":")).encode
_std_loads = json.JSONDecoder().decode


def _loads(text: str) -> Any:
    """Decode a payload with orjson (several times faster on a batch of hundreds of rows)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN, Infinity, integers past 64 bits: only the standard decoder reads them
        return _std_loads(text)


def encode_rows(rows: pa.Table, key_columns: Sequence[str],
                timestamp_field: str) -> tuple[list[str], list[int], list[str]]:
    """Return parallel lists of keys, event times (epoch µs) and JSON payloads, newest row per key.

    Payloads are built column-wise by Arrow (numbers print in their shortest exact form), so a
    write costs little Python per row.
    """
    from forgeml.times import timestamp_micros

    missing = [c for c in (*key_columns, timestamp_field) if c not in rows.column_names]
    if missing:
        raise ValidationError(f"online rows lack column {missing[0]!r}; they need {', '.join(key_columns)} "
                              f"and {timestamp_field}")
    if rows.num_rows == 0:
        return [], [], []
    micros = timestamp_micros(rows.column(timestamp_field), f"online rows column {timestamp_field!r}")
    if micros.null_count:
        raise ValidationError(f"online rows: {micros.null_count} rows have a null {timestamp_field!r}")
    names = [c for c in rows.column_names if c not in key_columns and c != timestamp_field]
    if rows.num_rows <= SMALL_WRITE and all(_plain(rows.column(n).type) for n in names):
        return _encode_few(rows, key_columns, names, micros.to_pylist())
    keys = _key_strings(rows, key_columns)
    pieces: list[Any] = []
    vectors = [n for n in names if _is_vector(rows.column(n).type)]
    for i, name in enumerate(names):
        pieces.append(("{" if i == 0 else ",") + _dumps(name) + ":")
        pieces.append(_json_column(rows.column(name)))
    if vectors:
        pieces.append(("," if names else "{") + _dumps(VECTORS) + ":" + _dumps(vectors))
    pieces.append("}" if names or vectors else "{}")
    payload_array = (pc.binary_join_element_wise(*pieces, "") if len(pieces) > 1
                     else pa.array(["{}"] * rows.num_rows, pa.string()))
    if pc.count_distinct(keys).as_py() == len(keys):
        # key order makes the B-tree inserts sequential: markedly faster writes into a large store
        order = pc.sort_indices(keys)
        return keys.take(order).to_pylist(), micros.take(order).to_pylist(), payload_array.take(order).to_pylist()
    payloads = payload_array.to_pylist()
    ts = micros.to_pylist()
    newest: dict[str, int] = {}
    key_list = keys.to_pylist()
    for i in sorted(range(len(ts)), key=ts.__getitem__):  # ascending time: the last write of a key wins
        newest[key_list[i]] = i
    return list(newest), [ts[i] for i in newest.values()], [payloads[i] for i in newest.values()]


SMALL_WRITE = 8  # rows up to which a write is encoded in plain Python (a few rows cost less than Arrow's calls)


def _plain(tp: pa.DataType) -> bool:
    return pa.types.is_string(tp) or pa.types.is_large_string(tp) or pa.types.is_integer(tp) or pa.types.is_boolean(
        tp)


def _encode_few(rows: pa.Table, key_columns: Sequence[str], names: Sequence[str],
                micros: list[int]) -> tuple[list[str], list[int], list[str]]:
    """encode_rows for a few rows of text, integer and boolean values: the same keys and JSON, per row."""
    keys = [entity_key(k) for k in zip(*(rows.column(c).to_pylist() for c in key_columns))]
    columns = [rows.column(n).to_pylist() for n in names]
    payloads = [_dumps(dict(zip(names, values))) for values in zip(*columns)] if names else ["{}"] * len(keys)
    newest: dict[str, int] = {}
    for i in sorted(range(len(micros)), key=micros.__getitem__):  # ascending time: the last write of a key wins
        newest[keys[i]] = i
    return list(newest), [micros[i] for i in newest.values()], [payloads[i] for i in newest.values()]


def _is_vector(tp: pa.DataType) -> bool:
    return pa.types.is_fixed_size_list(tp) and pa.types.is_floating(tp.value_type)


def _key_strings(rows: pa.Table, key_columns: Sequence[str]) -> pa.Array:
    def one(name: str) -> pa.Array:
        col = rows.column(name).combine_chunks()
        if pa.types.is_integer(col.type) or pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            return pc.cast(col, pa.string())
        return pa.array([str(v) for v in col.to_pylist()], pa.string())  # the same text entity_key() makes

    if len(key_columns) == 1:
        return one(key_columns[0])
    return pc.binary_join_element_wise(*(one(c) for c in key_columns), KEY_SEPARATOR)


def _json_column(col: pa.ChunkedArray) -> pa.Array:
    """Render a column as JSON value text, one string per row, vectorized where the type allows."""
    col = col.combine_chunks()
    tp = col.type
    if _is_vector(tp):
        return pa.array(_packed_vectors(col), pa.string())
    if pa.types.is_floating(tp):
        col = pc.cast(col, pa.float64())  # float32 printed through float64 reads back as the same number
        col = pc.if_else(pc.is_nan(col), pa.scalar(None, pa.float64()), col)
        text = pc.cast(col, pa.string())
        text = pc.if_else(pc.match_substring_regex(text, r"^-?\d+$"), pc.binary_join_element_wise(text, ".0", ""),
                          text)
        text = pc.replace_substring_regex(text, r"^(-?)inf$", r"\1Infinity")
        return text.fill_null("null")
    if pa.types.is_integer(tp) or pa.types.is_boolean(tp):
        return pc.cast(col, pa.string()).fill_null("null")
    if pa.types.is_timestamp(tp):
        micros = pc.cast(pc.cast(col, pa.timestamp("us", tz="UTC" if tp.tz else None), safe=False), pa.int64())
        return pc.cast(micros, pa.string()).fill_null("null")
    if (pa.types.is_string(tp) or pa.types.is_large_string(tp)) and len(col) > 64 and not pc.any(
            pc.match_substring_regex(col, r'[^ !#-\[\]-~]')).as_py():
        # printable ASCII without quote or backslash is its own JSON text: quote it without a per-row encode
        # (for a few rows the per-row encode is cheaper than these compute calls)
        return pc.binary_join_element_wise('"', col, '"', "").fill_null("null").cast(pa.string())
    return pa.array([_dumps(v) for v in col.to_pylist()], pa.string())


VECTORS = "__f32"  # payload key listing the features stored as base64 float32 (compact, exact, fast)


def _packed_vectors(col: pa.Array) -> list[str]:
    """Render vectors as quoted base64 float32 JSON strings ("null" for a missing vector)."""

    dim = col.type.list_size
    flat = pc.cast(col.flatten(), pa.float32()).to_numpy(zero_copy_only=False).reshape(-1, dim)
    encode = base64.b64encode
    if not col.null_count:
        return ['"' + encode(row.tobytes()).decode() + '"' for row in flat]
    it = iter(flat)
    return ['"' + encode(next(it).tobytes()).decode() + '"' if ok else "null" for ok in col.is_valid().to_pylist()]


def decode_payload(payload: str | bytes) -> dict[str, Any]:
    """Decode a stored JSON payload (vectors back to lists of floats)."""
    values = _loads(payload if isinstance(payload, str) else payload.decode())
    if VECTORS in values:
        _unpack_vectors(values)
    return values


def decode_payloads(payloads: list[str]) -> list[dict[str, Any]]:
    """Decode many payloads with one decoder call (much cheaper than one call per payload)."""
    if not payloads:
        return []
    decoded = _loads("[" + ",".join(payloads) + "]")
    for values in decoded:
        if VECTORS in values:
            _unpack_vectors(values)
    return decoded


def _unpack_vectors(values: dict[str, Any]) -> None:
    for name in values.pop(VECTORS):
        packed = values.get(name)
        if packed is not None:
            values[name] = array("f", base64.b64decode(packed)).tolist()


def rows_to_table(rows: list[tuple[int, dict[str, Any]] | None], features: Sequence[str]) -> pa.Table:
    """Build the Arrow answer of OnlineStore.read from read_rows results."""
    data: dict[str, Any] = {f: [None if r is None else r[1].get(f) for r in rows] for f in features}
    data[TIMESTAMP_COLUMN] = pa.array([None if r is None else r[0] for r in rows], pa.int64()).cast(
        pa.timestamp("us", tz="UTC"))
    return pa.table(data)


class _SQLiteErrors:
    """Turns sqlite3 errors into StorageError; one reusable instance per store (no per-call garbage)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, err: Any, tb: Any) -> bool:
        if isinstance(err, sqlite3.Error):
            raise StorageError(f"online store {self.path}: {err}") from err
        return False


class SQLiteOnlineStore:
    """Latest values per (view, entity key) in a WAL-mode SQLite file; one connection per thread."""

    def __init__(self, path: str | Path, busy_timeout_ms: int = 30000, mmap_mb: int = 256):
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.mmap_mb = mmap_mb
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._errors = _SQLiteErrors(self.path)
        self._local = threading.local()
        self._pid = os.getpid()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        conn = self.connection()
        with self._translate():
            conn.execute(
                "CREATE TABLE IF NOT EXISTS online_rows (view TEXT NOT NULL, entity_key TEXT NOT NULL,"
                " event_ts INTEGER NOT NULL, written_at INTEGER NOT NULL, payload TEXT NOT NULL,"
                " PRIMARY KEY (view, entity_key)) WITHOUT ROWID"
            )

    def _translate(self) -> _SQLiteErrors:
        return self._errors

    def connection(self) -> sqlite3.Connection:
        """Return this thread's connection (reopened after a fork)."""
        if self._pid != os.getpid():
            self._local, self._all, self._pid = threading.local(), [], os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                                       check_same_thread=False, cached_statements=256)
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute(f"PRAGMA mmap_size = {int(self.mmap_mb) * 1024 * 1024}")
                conn.execute("PRAGMA cache_size = -65536")
            except sqlite3.DatabaseError as e:
                raise StorageError(f"online store {self.path}: not a usable SQLite database ({e})") from e
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    # ------------------------------------------------------------ writes
    def write(self, view: str, rows: pa.Table, key_columns: Sequence[str], timestamp_field: str) -> int:
        """Upsert each key's newest row unless the stored one is newer; return rows written."""
        keys, times, payloads = encode_rows(rows, key_columns, timestamp_field)
        if not keys:
            return 0
        now = int(time.time() * 1_000_000)
        params = zip(repeat(view), keys, times, repeat(now), payloads)
        conn = self.connection()
        with self._translate():
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = conn.total_changes
                conn.executemany(
                    "INSERT INTO online_rows (view, entity_key, event_ts, written_at, payload) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (view, entity_key) DO UPDATE SET event_ts = excluded.event_ts,"
                    " written_at = excluded.written_at, payload = excluded.payload"
                    " WHERE excluded.event_ts >= online_rows.event_ts", params)
                written = conn.total_changes - before
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return written

    def delete_view(self, view: str) -> int:
        """Remove every stored row of a view."""
        with self._translate():
            return self.connection().execute("DELETE FROM online_rows WHERE view = ?", (view,)).rowcount

    # ------------------------------------------------------------ data subjects
    def _subject_keys(self, subject: Subject) -> list[tuple[str, str]]:
        """Return the (view, stored key) pairs that belong to the subject."""
        conn = self.connection()
        found = []
        with self._translate():
            for view, join_keys in subject.views.items():
                if subject.column not in join_keys:
                    continue
                if len(join_keys) == 1:
                    hit = conn.execute("SELECT entity_key FROM online_rows WHERE view = ? AND entity_key = ?",
                                       (view, subject.value)).fetchall()
                else:
                    hit = [(k,) for (k,) in conn.execute("SELECT entity_key FROM online_rows WHERE view = ?",
                                                         (view,))
                           if subject.matches_key(join_keys, tuple(k.split(KEY_SEPARATOR)))]
                found += [(view, k) for (k,) in hit]
        return found

    def find_subject(self, subject: Subject) -> list[Holding]:
        """Return each view holding a row of the subject."""
        return subject_holdings("online", self._subject_keys(subject))

    def erase_subject(self, subject: Subject) -> list[Holding]:
        """Delete the subject's rows, overwrite the freed pages and fold the WAL into the database file."""
        keys = self._subject_keys(subject)
        if not keys:
            return []
        self._scrubbed([("DELETE FROM online_rows WHERE view = ? AND entity_key = ?", keys)])
        return subject_holdings("online", keys)

    def _scrubbed(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run statements (SQL, parameter rows) in one transaction that leaves no copy of replaced rows."""
        conn = self.connection()
        with self._translate():
            # secure_delete zeroes the freed space; the checkpoint moves the zeroed pages into the main
            # file and truncates the WAL, so no copy of the old rows is left in either file
            conn.execute("PRAGMA secure_delete = ON")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for sql, rows in statements:
                        conn.executemany(sql, rows)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.execute("PRAGMA secure_delete = OFF")

    def expire(self, view: str, before_us: int, dry_run: bool = False) -> int:
        """Delete a view's rows stored with an event time before ``before_us`` (freed pages overwritten)."""
        with self._translate():
            gone = int(self.connection().execute("SELECT count(*) FROM online_rows WHERE view = ? AND event_ts < ?",
                                                 (view, before_us)).fetchone()[0])
        if gone and not dry_run:
            self._scrubbed([("DELETE FROM online_rows WHERE view = ? AND event_ts < ?", [(view, before_us)])])
        return gone

    def map_text(self, pattern: Any, fn: Any, dry_run: bool = False) -> dict[str, int]:
        """Pass every match of ``pattern`` in stored keys and payloads through ``fn``; return changed rows per view.

        A row whose key changes moves to the new key, unless a newer row is already stored there.
        """
        conn = self.connection()
        changed: dict[str, int] = {}
        moves = []
        with self._translate():
            for view, key, ts, written, payload in conn.execute(
                    "SELECT view, entity_key, event_ts, written_at, payload FROM online_rows"):
                text = payload if isinstance(payload, str) else payload.decode()
                new_key = pattern.sub(lambda m: fn(m.group(0)), key)
                new_text = pattern.sub(lambda m: fn(m.group(0)), text)
                if new_key != key or new_text != text:
                    changed[view] = changed.get(view, 0) + 1
                    moves.append((view, key, new_key, ts, written, new_text))
        if dry_run or not moves:
            return changed
        self._scrubbed([
            ("DELETE FROM online_rows WHERE view = ? AND entity_key = ?", [(v, k) for v, k, *_ in moves]),
            ("INSERT INTO online_rows (view, entity_key, event_ts, written_at, payload) VALUES (?, ?, ?, ?, ?)"
             " ON CONFLICT (view, entity_key) DO UPDATE SET event_ts = excluded.event_ts,"
             " written_at = excluded.written_at, payload = excluded.payload"
             " WHERE excluded.event_ts >= online_rows.event_ts", [(v, nk, t, w, p) for v, _, nk, t, w, p in moves]),
        ])
        return changed

    # ------------------------------------------------------------ reads
    def read_rows(self, view: str, keys: Sequence[tuple[Any, ...]]) -> list[tuple[int, dict[str, Any]] | None]:
        """Return (event µs, values) or None per key, in the order of keys."""
        conn = self.connection()
        if len(keys) == 1:
            with self._translate():
                row = conn.execute("SELECT event_ts, payload FROM online_rows WHERE view = ? AND entity_key = ?",
                                   (view, entity_key(keys[0]))).fetchone()
            return [None if row is None else (row[0], decode_payload(row[1]))]
        if not keys:
            return []
        wanted = [str(k[0]) for k in keys] if len(keys[0]) == 1 else [entity_key(k) for k in keys]
        chunk_size = self._chunk(conn)
        hits: list[tuple[str, int, str]] = []
        with self._translate():
            for start in range(0, len(wanted), chunk_size):
                chunk = wanted[start:start + chunk_size]
                sql = ("SELECT entity_key, event_ts, payload FROM online_rows WHERE view = ? AND entity_key IN ("
                       + ",".join("?" * len(chunk)) + ")")
                hits.extend(conn.execute(sql, (view, *chunk)).fetchall())
        if not hits:
            return [None] * len(wanted)
        decoded = decode_payloads([h[2] for h in hits])
        found = {key: (ts, values) for (key, ts, _), values in zip(hits, decoded)}
        get = found.get
        return [get(key) for key in wanted]

    def _chunk(self, conn: sqlite3.Connection) -> int:
        """Keys per IN (...) statement: as many as this SQLite build binds, less the view parameter."""
        limit = getattr(self._local, "chunk", None)
        if limit is None:
            limit = self._local.chunk = max(1, min(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - 1,
                                                   READ_CHUNK))
        return limit

    def read(self, view: str, keys: Sequence[tuple[Any, ...]], features: Sequence[str]) -> pa.Table:
        """Return the features and _event_timestamp per key as an Arrow table (nulls when absent)."""
        return rows_to_table(self.read_rows(view, keys), features)

    def count(self, view: str) -> int:
        """Return how many keys a view holds."""
        with self._translate():
            return self.connection().execute("SELECT count(*) FROM online_rows WHERE view = ?", (view,)).fetchone()[0]

    def close(self) -> None:
        """Close every connection this process opened."""
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


def micros_to_datetime(micros: int | None) -> datetime | None:
    """Return epoch microseconds as an aware UTC datetime."""
    if micros is None:
        return None
    return datetime.fromtimestamp(micros // 1_000_000, tz=UTC).replace(microsecond=micros % 1_000_000)
