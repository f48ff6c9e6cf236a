"""Redis Streams as an event stream: XADD to publish, consumer groups (XREADGROUP / XACK) to consume.

One Redis stream key is one partition. A record's offset is its entry ID ``ms-seq`` packed into one
integer (``ms << 20 | seq``), so offsets grow with the stream. Entries delivered but not acknowledged
stay in the group's pending list, and a consumer reopened under the same name reads those first:
that is the at-least-once replay after a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any

from forgeml import hookimpl
from forgeml.config import Secret, setting

SEQ_BITS = 20


@dataclass
class RedisStreamSettings:
    """Settings of a Redis Streams event stream."""

    stream: str = setting("", "The Redis stream key (empty: forgeml:stream:NAME is not guessed; give one).")
    url: str = setting("redis://127.0.0.1:6379/0", "Redis URL (redis://, rediss:// or unix://).")
    password: Secret | None = setting(None, "Password, given as { env = \"VAR\" } (or put it in the URL).")
    consumer: str = setting("forgeml", "Consumer name within each group; a restarted consumer of the same name "
                                       "gets its unacknowledged entries back.")
    maxlen: int = setting(0, "Trim the stream to about this many entries on publish (0: never trim).")
    publish_batch: int = setting(2000, "Entries per pipelined XADD round trip.")


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
                 maxlen: int = 0, publish_batch: int = 2000):
        import redis

        from forgeml.errors import ConfigError

        if not stream:
            raise ConfigError("a Redis Streams source needs stream = \"KEY\" in its [streams.NAME] table")
        self.client = redis.Redis.from_url(url, password=password)
        self.stream = stream
        self.consumer_name = consumer
        self.maxlen = maxlen or None
        self.publish_batch = publish_batch

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
    """Return the [id, fields] entries of a raw XREADGROUP reply for one stream (RESP2 list or RESP3 map)."""
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
    if all(len(f) == width and f[0::2] == names for f in flats):  # one producer's shape: slice, no per-entry dict
        flat = list(chain.from_iterable(flats))
        return {name: flat[2 * j + 1::width] for j, name in enumerate(names)}
    dicts = [dict(zip(f[0::2], f[1::2])) for f in flats]
    every: dict[bytes, None] = {}
    for d in dicts:
        every.update(dict.fromkeys(d))
    return {name: [d.get(name) for d in dicts] for name in every}


class RedisStreamConsumer:
    """A consumer group cursor: pending entries first after a reopen, then new ones (XREADGROUP >)."""

    def __init__(self, stream: RedisEventStream, group: str):
        import redis

        self.stream = stream
        self.group = group
        from forgeml.errors import StorageError

        try:
            stream.client.xgroup_create(stream.stream, group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):  # the group exists already: keep its offsets
                raise StorageError(f"Redis stream {stream.stream!r}: cannot create group {group!r}: {e}") from e
        except redis.RedisError as e:
            raise StorageError(f"Redis stream {stream.stream!r}: {e}") from e
        self._replay_after: str | None = "0"  # read our own pending entries before new ones
        self._delivered: list[tuple[int, bytes]] = []
        # XREADGROUP's replies unparsed (entries as [id, [field, value, ...]]): _table reads the flat field
        # lists column by column, far cheaper than the dict per entry redis-py would build
        self.reader = redis.Redis(connection_pool=stream.client.connection_pool)
        self.reader.set_response_callback("XREADGROUP", lambda response, **options: response)

    def poll(self, max_records: int, timeout_s: float) -> Any:
        """Return the next entries as an Arrow table of strings plus _partition and _offset."""
        s = self.stream
        key = s.stream
        if self._replay_after is not None:
            entries = _entries(s.call(self.reader.xreadgroup, self.group, s.consumer_name, {key: self._replay_after},
                                      count=max_records))
            if entries:
                self._replay_after = entries[-1][0].decode()
            else:
                self._replay_after = None
        if self._replay_after is None:
            entries = _entries(s.call(self.reader.xreadgroup, self.group, s.consumer_name, {key: ">"},
                                      count=max_records, block=max(1, int(timeout_s * 1000))))
        return self._table(entries)

    def _table(self, entries: list[Any]) -> Any:
        import pyarrow as pa

        offsets = []
        kept = []
        for entry_id, fields in entries:
            self._delivered.append((offset_of(entry_id), entry_id))
            if fields is None:  # trimmed away while pending: nothing left to deliver
                continue
            offsets.append(self._delivered[-1][0])
            kept.append(fields)
        values = _columns(kept)
        values.pop(b"_", None)
        # bytes straight into Arrow, which checks the UTF-8 once per column instead of a decode per value
        columns = {name.decode(): pa.array(col, pa.binary()).cast(pa.string()) for name, col in values.items()}
        columns["_partition"] = pa.array([self.stream.stream] * len(kept), pa.string())
        columns["_offset"] = pa.array(offsets, pa.int64())
        return pa.table(columns)

    def commit(self, positions: Mapping[str, int]) -> None:
        """XACK every delivered entry up to each partition's offset."""
        upto = positions.get(self.stream.stream)
        if upto is None:
            return
        done = [entry_id for offset, entry_id in self._delivered if offset <= upto]
        if done:
            self.stream.call(self.stream.client.xack, self.stream.stream, self.group, *done)
        self._delivered = [(o, e) for o, e in self._delivered if o > upto]

    def committed(self) -> dict[str, int]:
        """Return the offset before the group's oldest pending entry, or its last delivered one."""
        s = self.stream
        groups = {g["name"].decode() if isinstance(g["name"], bytes) else g["name"]: g
                  for g in s.call(s.client.xinfo_groups, s.stream)}
        info = groups.get(self.group)
        if info is None:
            return {}
        if info["pending"]:
            oldest = s.call(s.client.xpending, s.stream, self.group)["min"]
            return {s.stream: offset_of(oldest) - 1}
        last = info["last-delivered-id"]
        last = last.decode() if isinstance(last, bytes) else last
        return {} if last == "0-0" else {s.stream: offset_of(last)}

    def close(self) -> None:
        """Nothing to release: the connection belongs to the stream."""


def _redis_stream(settings: RedisStreamSettings, workspace: Any) -> RedisEventStream:
    password = settings.password.get() if settings.password is not None else None
    return RedisEventStream(settings.url, settings.stream, password=password, consumer=settings.consumer,
                            maxlen=settings.maxlen, publish_batch=settings.publish_batch)


@hookimpl
def forgeml_register_stream_sources(register):
    """Offer Redis Streams."""
    register("redis", _redis_stream, settings=RedisStreamSettings,
             description="a Redis stream read through consumer groups")
