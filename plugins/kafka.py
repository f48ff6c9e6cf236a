"""Kafka topics as an event stream, through confluent-kafka (librdkafka): ``[streams.NAME] plugin = "kafka"``.

One Kafka partition is one stream partition (``_partition`` = "TOPIC:N") and Kafka's offsets are the
stream's offsets. Each record is one JSON object (timestamps as ISO 8601 text), keyed by ``key_column``
so an entity's events stay in one partition, in order. A consumer reads every partition of the topic
(a view has one stream processor, as with the other stream sources) from the consumer group's committed
offsets, committed in the group on the broker: the stream processor commits only after the aggregation
state holding each entity's applied offsets is written, so a restart neither loses nor double-counts.
Needs ``pip install 'forgeml[kafka]'``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from forgeml import hookimpl
from forgeml.config import Secret, reveal, setting
from forgeml.errors import ConfigError, StorageError
from forgeml.features.dead_letters import ERROR


@dataclass
class KafkaStreamSettings:
    """Settings of a Kafka event stream."""

    topic: str = setting("", "The Kafka topic (required).")
    bootstrap_servers: Secret | str = setting("127.0.0.1:9092", "Brokers to contact first, \"HOST:PORT[,HOST:PORT]\".")
    key_column: str = setting("", "Column whose value keys each record, so one entity's events keep their order in "
                                  "one partition (empty: no key).")
    partitions: int = setting(1, "Partitions of the topic when forgeml creates it (on first publish).")
    replication_factor: int = setting(1, "Replicas of each partition when forgeml creates the topic.")
    security_protocol: str = setting("PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.")
    sasl_mechanism: str = setting("", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_* protocols).")
    sasl_username: Secret | None = setting(None, "SASL user as { env = \"VAR\" }.")
    sasl_password: Secret | None = setting(None, "SASL password as { env = \"VAR\" }.")
    timeout_s: float = setting(10.0, "How long a publish or a metadata request may wait for the brokers.")


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


class KafkaEventStream:
    """A Kafka topic: publish with a producer, consume through a consumer group's committed offsets."""

    def __init__(self, config: dict[str, Any], topic: str, key_column: str = "", partitions: int = 1,
                 replication_factor: int = 1, timeout_s: float = 10.0):
        if not topic:
            raise ConfigError("a Kafka stream needs topic = \"NAME\" in its [streams.NAME] table")
        try:
            import confluent_kafka  # noqa: F401
        except ImportError as e:
            raise ConfigError(f"the kafka stream source needs confluent-kafka: pip install 'forgeml[kafka]' ({e})") from e
        self.config = config
        self.topic = topic
        self.key_column = key_column
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.timeout_s = timeout_s
        self._producer: Any = None

    def partition_ids(self) -> list[int]:
        """Return the topic's partition numbers (empty when the topic does not exist)."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        try:
            # every topic, not this one by name: a request naming a missing topic may create it with the
            # broker's default partitions
            meta = AdminClient(self.config).list_topics(timeout=self.timeout_s)
        except KafkaException as e:
            raise StorageError(f"Kafka topic {self.topic!r}: cannot reach {self.config['bootstrap.servers']}: "
                               f"{e.args[0].str() if e.args else e}") from e
        info = meta.topics.get(self.topic)
        return sorted(info.partitions) if info is not None and info.error is None else []

    def ensure_topic(self) -> None:
        """Create the topic with the configured partitions unless it exists."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        if self.partition_ids():
            return
        admin = AdminClient(self.config)  # held until the future resolves: a dropped client cancels it
        futures = admin.create_topics([NewTopic(self.topic, self.partitions, self.replication_factor)],
                                      operation_timeout=self.timeout_s)
        try:
            futures[self.topic].result(self.timeout_s)
        except KafkaException as e:
            if e.args and e.args[0].name() == "TOPIC_ALREADY_EXISTS":
                return
            raise StorageError(f"Kafka topic {self.topic!r}: cannot create it: {e}") from e

    def publish(self, rows: Any) -> int:
        """Send one JSON record per row and wait until the brokers acknowledged every one."""
        from confluent_kafka import KafkaException, Producer

        if self._producer is None:
            self.ensure_topic()
            self._producer = Producer({**self.config, "linger.ms": 5, "enable.idempotence": True})
        failures: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(err.str())

        names = rows.column_names
        columns = [rows.column(n).to_pylist() for n in names]
        keys = rows.column(self.key_column).to_pylist() if self.key_column else None
        for i in range(rows.num_rows):
            value = json.dumps({n: _json_value(col[i]) for n, col in zip(names, columns)}).encode()
            key = None if keys is None or keys[i] is None else str(keys[i]).encode()
            while True:
                try:
                    self._producer.produce(self.topic, value, key, on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    self._producer.poll(0.1)
                except KafkaException as e:
                    raise StorageError(f"Kafka topic {self.topic!r}: cannot publish: {e}") from e
        left = self._producer.flush(self.timeout_s)
        if left or failures:
            raise StorageError(f"Kafka topic {self.topic!r}: {left} record(s) unacknowledged after "
                               f"{self.timeout_s:g} s, {len(failures)} failed{': ' + failures[0] if failures else ''}")
        return rows.num_rows

    def consumer(self, group: str) -> KafkaStreamConsumer:
        """Open the group's cursor over every partition, at its committed offsets (the start on first use)."""
        return KafkaStreamConsumer(self, group)

    def close(self) -> None:
        """Deliver anything still queued."""
        if self._producer is not None:
            self._producer.flush(self.timeout_s)
            self._producer = None


class KafkaStreamConsumer:
    """Reads all of a topic's partitions from a consumer group's committed offsets; commits to the group."""

    def __init__(self, stream: KafkaEventStream, group: str):
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.stream = stream
        self.group = group
        stream.ensure_topic()
        self._consumer = Consumer({**stream.config, "group.id": group, "enable.auto.commit": False,
                                   "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
                                   "enable.partition.eof": False,
                                   # an idle fetch waits at the broker this long: short, so a poll's timeout
                                   # (often well under a second) sees records published meanwhile
                                   "fetch.wait.max.ms": 50})
        starts = []
        for tp in self._committed_partitions():
            starts.append(TopicPartition(stream.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING))
        # assigned, not subscribed: no group join to wait for, and every partition stays with this processor
        self._consumer.assign(starts)

    def _committed_partitions(self) -> list[Any]:
        from confluent_kafka import KafkaException, TopicPartition

        wanted = [TopicPartition(self.stream.topic, p) for p in self.stream.partition_ids()]
        try:
            return list(self._consumer.committed(wanted, timeout=self.stream.timeout_s)) if wanted else []
        except KafkaException as e:
            raise StorageError(f"Kafka group {self.group!r}: cannot read committed offsets: {e}") from e

    def poll(self, max_records: int, timeout_s: float) -> Any:
        """Return up to max_records records as an Arrow table plus _partition ("TOPIC:N"), _offset and _error."""
        import pyarrow as pa

        messages = self._consumer.consume(num_messages=max(1, max_records), timeout=timeout_s)
        rows, parts, offsets, errors = [], [], [], []
        for msg in messages:
            if msg.error() is not None:
                raise StorageError(f"Kafka topic {self.stream.topic!r}: {msg.error().str()}")
            row, error = _decoded(msg.value())
            rows.append(row)
            errors.append(None if error is None else f"partition {msg.partition()} offset {msg.offset()}: {error}")
            parts.append(f"{msg.topic()}:{msg.partition()}")
            offsets.append(msg.offset())
        table = _rows_table(rows)
        table = table.append_column("_partition", pa.array(parts, pa.string()))
        table = table.append_column("_offset", pa.array(offsets, pa.int64()))
        if any(e is not None for e in errors):  # a foreign producer's record is set aside, never a stuck consumer
            table = table.append_column(ERROR, pa.array(errors, pa.string()))
        return table

    def commit(self, positions: Mapping[str, int]) -> None:
        """Commit each partition's last processed offset (Kafka stores the next one to read) synchronously."""
        from confluent_kafka import KafkaException, TopicPartition

        tps = []
        for part, offset in positions.items():
            topic, _, number = part.rpartition(":")
            tps.append(TopicPartition(topic, int(number), int(offset) + 1))
        if not tps:
            return
        try:
            self._consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as e:
            raise StorageError(f"Kafka group {self.group!r}: commit failed: {e}") from e

    def committed(self) -> dict[str, int]:
        """Return the last processed offset per partition, as committed in the group."""
        return {f"{tp.topic}:{tp.partition}": tp.offset - 1 for tp in self._committed_partitions() if tp.offset >= 0}

    def close(self) -> None:
        """Leave without committing anything more."""
        self._consumer.close()


def _decoded(value: bytes | None) -> tuple[dict[str, Any], str | None]:
    """Return a message's JSON object, or an empty record and why it is not one (with its first bytes)."""
    try:
        row = json.loads(value) if value is not None else None
    except (ValueError, TypeError) as e:
        return {}, f"not a JSON object ({e}); value starts {bytes(value or b'')[:80]!r}"
    if not isinstance(row, dict):
        return {}, f"not a JSON object (a {type(row).__name__}); value starts {bytes(value or b'')[:80]!r}"
    return row, None


def _rows_table(rows: list[dict[str, Any]]) -> Any:
    """Return the records as an Arrow table; columns whose JSON types disagree become text the caller casts."""
    import pyarrow as pa

    if not rows:
        return pa.table({})
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        names = list(dict.fromkeys(name for row in rows for name in row))
        return pa.table({n: pa.array([_text(row.get(n)) for row in rows], pa.string()) for n in names})


def _text(value: Any) -> str | None:
    """Return a JSON value as the text a cast reads (strings as they are, others as JSON)."""
    return value if value is None or isinstance(value, str) else json.dumps(value)


def client_config(settings: KafkaStreamSettings) -> dict[str, Any]:
    """Return the librdkafka configuration the settings describe."""
    config: dict[str, Any] = {"bootstrap.servers": reveal(settings.bootstrap_servers),
                              "security.protocol": settings.security_protocol,
                              # a consumer that died without closing must not hold its partitions for long
                              "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
    if settings.sasl_mechanism:
        config.update({"sasl.mechanism": settings.sasl_mechanism, "sasl.username": reveal(settings.sasl_username),
                       "sasl.password": reveal(settings.sasl_password)})
    return config


def _kafka_stream(settings: KafkaStreamSettings, workspace: Any) -> KafkaEventStream:
    return KafkaEventStream(client_config(settings), settings.topic, key_column=settings.key_column,
                            partitions=settings.partitions, replication_factor=settings.replication_factor,
                            timeout_s=settings.timeout_s)


@hookimpl
def forgeml_register_stream_sources(register):
    """Offer Kafka topics as a stream source."""
    register("kafka", _kafka_stream, settings=KafkaStreamSettings,
             description="a Kafka topic read through a consumer group's committed offsets (confluent-kafka)")
