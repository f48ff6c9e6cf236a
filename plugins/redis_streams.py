"""Redis Streams as an event stream: XADD to publish; a consumer group's position as the committed offset.

One Redis stream key is one partition. A record's offset is its entry ID ``ms-seq`` packed into one
integer (``ms << 20 | seq``), so offsets grow with the stream. A consumer reads with XREAD after its
own cursor and commits by moving its group's last-delivered ID (XGROUP SETID); a consumer reopened
after a crash starts from that ID, so what was read but not committed comes again: at least once.
The window views' tiles keep the offsets they applied, which makes the replay count nothing twice.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any

from forgeml import hookimpl
from forgeml.config import Secret, setting

SEQ_BITS = 20
ERROR = "_error"  # the column saying why a record could not be decoded (see StreamConsumer.poll)
READ_AHEAD_WAIT_S = 60.0
AHEAD_CHUNKS = 8  # chunks read ahead at most (with read_count 10,000: a default stream batch and more)


@dataclass
class RedisStreamSettings:
    """Settings of a Redis Streams event stream."""

    stream: str = setting("", "The Redis stream key (empty: forgeml:stream:NAME is not guessed; give one).")
    url: str = setting("redis://127.0.0.1:6379/0", "Redis URL (redis://, rediss:// or unix://).")
    password: Secret | None = setting(None, "Password, given as { env = \"VAR\" } (or put it in the URL).")
    consumer: str = setting("forgeml", "Consumer name (reads go through XREAD and the group keeps only the committed "
                                       "position, so no entry waits on a consumer of this name).")
    maxlen: int = setting(0, "Trim the stream to about this many entries on publish (0: never trim).")
    publish_batch: int = setting(2000, "Entries per pipelined XADD round trip.")
    read_count: int = setting(10_000, "Entries per XREAD round trip; under a backlog a thread reads up to 8 "
                                      "such chunks ahead while the last batch is applied.")


def offset_of(entry_id: bytes | str) -> int:
    """Pack a stream entry ID "ms-seq" into one growing integer offset."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    if int(seq) >= 1 << SEQ_BITS:
        from forgeml.errors import StorageError

        raise StorageError(f"Redis stream entry {text}: sequence number too large to pack into an offset")
    return (int(ms) << SEQ_BITS) | int(seq)


def id_of(offset: int) -> str:
    """Unpack an offset into the stream entry ID it came from."""
    return f"{offset >> SEQ_BITS}-{offset & ((1 << SEQ_BITS) - 1)}"


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class RedisEventStream:
    """One Redis stream key: publish with pipelined XADD, consume through consumer groups."""

    def __init__(self, url: str, stream: str, password: str | None = None, consumer: str = "forgeml",
                 maxlen: int = 0, publish_batch: int = 2000, read_count: int = 10_000):
        import redis

        from forgeml.errors import ConfigError

        if not stream:
            raise ConfigError("a Redis Streams source needs stream = \"KEY\" in its [streams.NAME] table")
        self.client = redis.Redis.from_url(url, password=password)
        self.stream = stream
        self.consumer_name = consumer
        self.maxlen = maxlen or None
        self.publish_batch = publish_batch
        self.read_count = max(1, read_count)

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a Redis command, turning Redis errors into StorageError."""
        import redis

        from forgeml.errors import StorageError

        try:
            return fn(*args, **kwargs)
        except redis.RedisError as e:
            raise StorageError(f"Redis stream {self.stream!r}: {e}") from e

    def publish(self, rows: Any) -> int:
        """Append each row as one entry (null values are left out of the entry)."""
        names = rows.column_names
        columns = [rows.column(n).to_pylist() for n in names]
        n = rows.num_rows
        for start in range(0, n, self.publish_batch):
            pipe = self.client.pipeline(transaction=False)
            for i in range(start, min(n, start + self.publish_batch)):
                fields = {name: _text(col[i]) for name, col in zip(names, columns) if col[i] is not None}
                pipe.xadd(self.stream, fields or {"_": ""}, maxlen=self.maxlen, approximate=True)
            self.call(pipe.execute)
        return n

    def _subject_entries(self, subject: Any) -> list[bytes]:
        """Return the ids of entries whose subject field holds the subject's value (scanning in batches)."""
        field, value = subject.column.encode(), subject.value.encode()
        found: list[bytes] = []
        start = "-"
        while True:
            batch = self.call(self.client.xrange, self.stream, min=start, max="+", count=5000)
            if not batch:
                return found
            found += [entry_id for entry_id, fields in batch if fields.get(field) == value]
            last = batch[-1][0].decode()
            start = "(" + last
            if len(batch) < 5000:
                return found

    def find_subject(self, subject: Any) -> list[Any]:
        """Return the stream holding entries of the subject, with how many."""
        from forgeml.contracts import Holding

        ids = self._subject_entries(subject)
        return [Holding("stream", self.stream, len(ids))] if ids else []

    def erase_subject(self, subject: Any) -> list[Any]:
        """Delete the subject's entries (XDEL); consumers skip the gaps."""
        from forgeml.contracts import Holding

        ids = self._subject_entries(subject)
        for start in range(0, len(ids), 1000):
            self.call(self.client.xdel, self.stream, *ids[start:start + 1000])
        return [Holding("stream", self.stream, len(ids))] if ids else []

    def consumer(self, group: str) -> RedisStreamConsumer:
        """Open a consumer group's cursor, creating the group at the stream's start on first use."""
        return RedisStreamConsumer(self, group)

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


def _entries(reply: Any) -> list[Any]:
    """Return the [id, fields] entries of a raw XREAD reply for one stream (RESP2 list or RESP3 map)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return next(iter(reply.values()))
    return reply[0][1]


def _columns(flats: list[list[bytes]]) -> dict[bytes, list[bytes | None]]:
    """Return each field's values from entries' flat [field, value, ...] lists (None where one lacks it)."""
    if not flats:
        return {}
    first = flats[0]
    names = first[0::2]
    width = len(first)
    if len(set(map(len, flats))) == 1:  # one producer's shape (checked below): slice, no per-entry dict
        flat = list(chain.from_iterable(flats))
        if all(flat[2 * j::width].count(name) == len(flats) for j, name in enumerate(names)):
            return {name: flat[2 * j + 1::width] for j, name in enumerate(names)}
    dicts = [dict(zip(f[0::2], f[1::2])) for f in flats]
    every: dict[bytes, None] = {}
    for d in dicts:
        every.update(dict.fromkeys(d))
    return {name: [d.get(name) for d in dicts] for name in every}


def _offsets(ids: list[bytes]) -> Any:
    """Return entry IDs "ms-seq" packed into offsets, as an int64 numpy array (one Arrow pass, no loop)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not ids:
        return np.zeros(0, np.int64)
    parts = pc.list_flatten(pc.split_pattern(pa.array(ids, pa.binary()).cast(pa.string()), "-"))
    ms, seq = parts.cast(pa.int64()).to_numpy().reshape(-1, 2).T
    if int(seq.max()) >= 1 << SEQ_BITS:
        offset_of(ids[int(seq.argmax())])  # raises, naming the entry
    return (ms << SEQ_BITS) | seq


def _text_column(name: str, values: list[bytes | None], errors: list[str | None]) -> Any:
    """Return values as an Arrow string column; a value that is not UTF-8 is shown escaped and its row gets
    an error, so that one record cannot fail the whole batch."""
    import pyarrow as pa

    raw = pa.array(values, pa.binary())
    try:
        return raw.cast(pa.string())  # Arrow checks the UTF-8 once per column, far cheaper than a decode per value
    except pa.ArrowInvalid:
        pass
    shown: list[str | None] = []
    for i, value in enumerate(values):
        if value is None:
            shown.append(None)
            continue
        try:
            shown.append(value.decode())
        except UnicodeDecodeError as e:
            shown.append(value.decode("utf-8", "backslashreplace"))
            errors[i] = errors[i] or (f"field {name!r} is not UTF-8 text (byte {value[e.start]:#04x} at "
                                      f"position {e.start})")
    return pa.array(shown, pa.string())


def records_table(partition: str, entries: list[Any]) -> Any:
    """Return entries ([id, [field, value, ...]]) as an Arrow table of strings plus _partition, _offset, and
    _error (null, or why the record could not be decoded)."""
    import pyarrow as pa

    kept = [e for e in entries if e[1] is not None]  # an entry trimmed away while pending has no fields
    values = _columns([fields for _, fields in kept])
    values.pop(b"_", None)
    errors: list[str | None] = [None] * len(kept)
    columns = {}
    for raw_name, col in values.items():
        try:
            name = raw_name.decode()
        except UnicodeDecodeError:
            name = raw_name.decode("utf-8", "backslashreplace")
            for i, value in enumerate(col):
                if value is not None:
                    errors[i] = errors[i] or f"field name {name!r} is not UTF-8 text"
        columns[name] = _text_column(name, col, errors)
    columns["_partition"] = pa.array([partition] * len(kept), pa.string())
    columns["_offset"] = pa.array(_offsets([entry_id for entry_id, _ in kept]), pa.int64())
    if any(e is not None for e in errors):
        columns[ERROR] = pa.array(errors, pa.string())
    return pa.table(columns)


class RedisStreamConsumer:
    """A consumer group's cursor. The group's last-delivered ID is its committed position: records are read
    with XREAD from an in-memory cursor, and a commit moves the group on with XGROUP SETID. So nothing is
    kept per entry on the server (no pending list to fill and acknowledge), and a reopened consumer
    starts after the last commit: what was read but not committed is delivered again."""

    def __init__(self, stream: RedisEventStream, group: str):
        import redis

        from forgeml.errors import StorageError

        self.stream = stream
        self.group = group
        try:
            stream.client.xgroup_create(stream.stream, group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):  # the group exists already: keep its position
                raise StorageError(f"Redis stream {stream.stream!r}: cannot create group {group!r}: {e}") from e
        except redis.RedisError as e:
            raise StorageError(f"Redis stream {stream.stream!r}: {e}") from e
        # XREAD's replies unparsed (entries as [id, [field, value, ...]]): records_table reads the flat field
        # lists column by column, far cheaper than the dict per entry redis-py would build
        self.reader = redis.Redis(connection_pool=stream.client.connection_pool)
        self.reader.set_response_callback("XREAD", lambda response, **options: response)
        self._cursor = self._resume()
        self._committed = offset_of(self._cursor)
        # chunks (table, was it full) read ahead in order by one reader thread at a time, with the rest of a
        # chunk larger than the last poll wanted in front; the cursor moves only in the one thread reading
        self._chunks: deque[tuple[Any, bool]] = deque()
        self._ready = threading.Condition()
        self._reading = False
        self._closing = False
        self._reader: Any = None
        self._error: BaseException | None = None

    def _resume(self) -> str:
        """Return the entry ID to read after. A group that earlier releases read with XREADGROUP may hold
        pending entries: it is moved back to before the oldest, and they are acknowledged (they will be
        read again from there)."""
        s = self.stream
        info = self._info()
        if info is None:
            return "0-0"
        if not info["pending"]:
            last = info["last-delivered-id"]
            return last.decode() if isinstance(last, bytes) else last
        oldest = s.call(s.client.xpending, s.stream, self.group)["min"]
        start = id_of(max(0, offset_of(oldest) - 1))
        s.call(s.client.xgroup_setid, s.stream, self.group, start)
        while True:  # only once the group is moved back: a crash in between finds the same start again
            held = s.call(s.client.xpending_range, s.stream, self.group, min="-", max="+", count=10_000)
            if not held:
                return start
            s.call(s.client.xack, s.stream, self.group, *[h["message_id"] for h in held])

    def _info(self) -> dict[str, Any] | None:
        s = self.stream
        for g in s.call(s.client.xinfo_groups, s.stream):
            name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
            if name == self.group:
                return g
        return None

    def _read(self, timeout_s: float | None) -> tuple[Any, bool]:
        """Read the next chunk after the cursor (waiting up to timeout_s; None: not at all); return it as a
        table and whether it was full (more are likely waiting)."""
        s = self.stream
        block = None if timeout_s is None else max(1, int(timeout_s * 1000))
        entries = _entries(s.call(self.reader.xread, {s.stream: self._cursor}, count=s.read_count, block=block))
        if entries:
            last = entries[-1][0]
            self._cursor = last.decode() if isinstance(last, bytes) else last
        return records_table(s.stream, entries), len(entries) >= s.read_count

    def poll(self, max_records: int, timeout_s: float) -> Any:
        """Return up to max_records next records as an Arrow table of strings plus _partition and _offset (and
        _error where a record could not be decoded)."""
        import pyarrow as pa

        parts: list[Any] = []
        n = 0
        while n < max_records:
            item = self._next_chunk()
            if item is None:
                if n:
                    break
                item = self._read(timeout_s)  # nothing read ahead and no reader running: wait here
            chunk, full = item
            if full:  # more is waiting: read it while this poll's records are used (socket waits free the GIL)
                self._read_ahead()
            if chunk.num_rows > max_records - n:
                with self._ready:
                    self._chunks.appendleft((chunk.slice(max_records - n), full))
                chunk = chunk.slice(0, max_records - n)
            if chunk.num_rows:
                parts.append(chunk)
                n += chunk.num_rows
            if not full:  # caught up with the stream: hand over what there is now
                break
        if not parts:
            return records_table(self.stream.stream, [])
        return pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]

    def _next_chunk(self) -> tuple[Any, bool] | None:
        """Return the oldest chunk read ahead, waiting while the reader runs; None when there is none."""
        with self._ready:
            self._ready.wait_for(lambda: self._chunks or not self._reading, timeout=READ_AHEAD_WAIT_S)
            if self._chunks:
                return self._chunks.popleft()
            reading, error, self._error = self._reading, self._error, None
        if reading:
            from forgeml.errors import StorageError

            raise StorageError(f"Redis stream {self.stream.stream!r}: no read came back within {READ_AHEAD_WAIT_S:g}s")
        if error is not None:
            raise error
        return None

    def _read_ahead(self) -> None:
        """Start a thread reading chunks after the cursor until AHEAD_CHUNKS wait or the stream is caught up."""
        from forgeml.buffering import Beside

        with self._ready:
            if self._reading or len(self._chunks) >= AHEAD_CHUNKS:
                return
            self._reading = True

        def run() -> None:
            try:
                while not self._closing:
                    chunk, full = self._read(None)
                    with self._ready:
                        self._chunks.append((chunk, full))
                        self._ready.notify_all()
                        if not full or len(self._chunks) >= AHEAD_CHUNKS:
                            return
            except BaseException as e:  # raised by the next poll that finds nothing else
                with self._ready:
                    self._error = e
            finally:
                with self._ready:
                    self._reading = False
                    self._ready.notify_all()

        self._reader = Beside(run, "forgeml-redis-read-ahead")

    def commit(self, positions: Mapping[str, int]) -> None:
        """Move the group's position to each partition's offset (XGROUP SETID)."""
        upto = positions.get(self.stream.stream)
        if upto is None or upto <= self._committed:
            return
        self.stream.call(self.stream.client.xgroup_setid, self.stream.stream, self.group, id_of(upto))
        self._committed = upto

    def committed(self) -> dict[str, int]:
        """Return the group's position: the offset before its oldest pending entry, or its last delivered one."""
        s = self.stream
        info = self._info()
        if info is None:
            return {}
        if info["pending"]:
            oldest = s.call(s.client.xpending, s.stream, self.group)["min"]
            return {s.stream: offset_of(oldest) - 1}
        last = info["last-delivered-id"]
        last = last.decode() if isinstance(last, bytes) else last
        return {} if last == "0-0" else {s.stream: offset_of(last)}

    def close(self) -> None:
        """Stop reading ahead, waiting for a read still under way (the connection belongs to the stream)."""
        self._closing = True
        if self._reader is not None:
            self._reader.join(timeout=READ_AHEAD_WAIT_S)


def _redis_stream(settings: RedisStreamSettings, workspace: Any) -> RedisEventStream:
    password = settings.password.get() if settings.password is not None else None
    return RedisEventStream(settings.url, settings.stream, password=password, consumer=settings.consumer,
                            maxlen=settings.maxlen, publish_batch=settings.publish_batch,
                            read_count=settings.read_count)


@hookimpl
def forgeml_register_stream_sources(register):
    """Offer Redis Streams."""
    register("redis", _redis_stream, settings=RedisStreamSettings,
             description="a Redis stream read through consumer groups")
