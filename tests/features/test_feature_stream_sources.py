"""The built-in event streams pass the conformance suite: Redis Streams (real redis-server) and a file folder."""

from __future__ import annotations

import uuid

import pytest

from forgeml.testing import EventStreamSuite


class TestRedisStreams(EventStreamSuite):
    """Redis Streams consumer groups against the real redis-server of tests/services/redis.sh."""

    @pytest.fixture
    def stream(self, redis_url):
        from forgeml.plugins.redis_streams import RedisEventStream

        key = f"forgeml-test:{uuid.uuid4().hex}"
        s = RedisEventStream(redis_url, key, consumer="c1")
        yield s
        s.client.delete(key)
        s.close()

    @pytest.fixture
    def reopen(self, redis_url):
        from forgeml.plugins.redis_streams import RedisEventStream

        return lambda s: RedisEventStream(redis_url, s.stream, consumer="c1")


class TestRedisStreamsInSmallReads(TestRedisStreams):
    """The same with 3 entries per XREAD: a poll gathers several reads, each next one read ahead in a thread."""

    @pytest.fixture
    def stream(self, redis_url):
        from forgeml.plugins.redis_streams import RedisEventStream

        key = f"forgeml-test:{uuid.uuid4().hex}"
        s = RedisEventStream(redis_url, key, consumer="c1", read_count=3)
        yield s
        s.client.delete(key)
        s.close()

    @pytest.fixture
    def reopen(self, redis_url):
        from forgeml.plugins.redis_streams import RedisEventStream

        return lambda s: RedisEventStream(redis_url, s.stream, consumer="c1", read_count=3)


@pytest.mark.service
def test_a_redis_group_left_with_pending_entries_resumes_before_them(redis_url):
    """A group read through XREADGROUP (as earlier releases did) with entries left unacknowledged resumes
    before the oldest of them, and its pending list is emptied (they are read again instead)."""
    from forgeml.plugins.redis_streams import RedisEventStream, offset_of
    from forgeml.testing.streams import drain, events, typed

    key = f"forgeml-test:{uuid.uuid4().hex}"
    s = RedisEventStream(redis_url, key)
    try:
        s.publish(events(0, 10))
        s.client.xgroup_create(key, "old", id="0")
        read = s.client.xreadgroup("old", "forgeml", {key: ">"}, count=6)[0][1]
        s.client.xack(key, "old", *[entry_id for entry_id, _ in read[:4]])  # 4 processed; 2 left pending
        consumer = s.consumer("old")
        assert consumer.committed() == {key: offset_of(read[3][0])}
        assert s.client.xpending(key, "old")["pending"] == 0
        again = drain(consumer, max_records=4)
        assert typed(again, events(4, 6)).equals(events(4, 6))
    finally:
        s.client.delete(key)
        s.close()


@pytest.mark.service
def test_a_redis_record_that_is_not_utf8_comes_with_an_error_not_a_failed_poll(redis_url):
    """Bytes that are not UTF-8 (in a value or a field name) mark that record's _error; the others decode."""
    from forgeml.plugins.redis_streams import RedisEventStream

    key = f"forgeml-test:{uuid.uuid4().hex}"
    s = RedisEventStream(redis_url, key)
    try:
        s.client.xadd(key, {"card_id": "1", "merchant": "café".encode()})
        s.client.xadd(key, {"card_id": "2", "merchant": b"bad\xff"})
        s.client.xadd(key, {"card_id": "3", b"m\xfe": "x"})
        got = s.consumer("g").poll(10, 1.0)
        assert got.column("card_id").to_pylist() == ["1", "2", "3"]
        assert got.column("merchant").to_pylist() == ["café", "bad\\xff", None]
        errors = got.column("_error").to_pylist()
        assert errors[0] is None
        assert "'merchant' is not UTF-8" in errors[1] and "0xff at position 3" in errors[1]
        assert "field name" in errors[2] and "not UTF-8" in errors[2]
    finally:
        s.client.delete(key)
        s.close()


class TestFileStreams(EventStreamSuite):
    """A folder of Parquet files."""

    @pytest.fixture
    def stream(self, tmp_path):
        from forgeml.plugins.file_streams import FolderEventStream

        return FolderEventStream(tmp_path / "events")

    @pytest.fixture
    def reopen(self):
        from forgeml.plugins.file_streams import FolderEventStream

        return lambda s: FolderEventStream(s.folder, s.format)


class TestCsvFileStreams(TestFileStreams):
    """A folder of CSV files, whose records come back typed by CSV inference."""

    @pytest.fixture
    def stream(self, tmp_path):
        from forgeml.plugins.file_streams import FolderEventStream

        return FolderEventStream(tmp_path / "events", "csv")


def test_redis_offsets_pack_entry_ids_in_order():
    """Entry IDs pack into integers that sort like the IDs and unpack to them."""
    from forgeml.plugins.redis_streams import id_of, offset_of

    ids = ["1-0", "1-1", "1-1048575", "2-0", "1700000000000-3"]
    offsets = [offset_of(i) for i in ids]
    assert offsets == sorted(offsets) and [id_of(o) for o in offsets] == ids


def test_bad_stream_configuration_is_one_line(tmp_path):
    """A [streams.NAME] table naming an unknown plugin or missing its key fails at start-up, with a hint."""
    from forgeml.errors import ConfigError
    from forgeml.workspace import Workspace

    root = tmp_path / "ws"
    root.mkdir()
    (root / "plugins.toml").write_text('[streams.txns]\nplugin = "fils"\n')
    with pytest.raises(ConfigError, match="unknown stream source 'fils'.*did you mean 'files'"):
        Workspace(root)
    (root / "plugins.toml").write_text('[streams.txns]\nplugin = "files"\n')
    ws = Workspace(root)
    with pytest.raises(ConfigError, match="needs path"):
        ws.stream("txns")
    from forgeml.errors import NotFoundError

    with pytest.raises(NotFoundError, match="unknown stream 'nope'"):
        ws.stream("nope")


class TestKafkaStreams(EventStreamSuite):
    """A Kafka topic (one partition, so publish order is delivery order) on the Tansu broker of tests/services/kafka.sh."""

    @pytest.fixture
    def stream(self, kafka_bootstrap):
        from forgeml.plugins.kafka import KafkaEventStream

        s = KafkaEventStream({"bootstrap.servers": kafka_bootstrap}, f"forgeml-test-{uuid.uuid4().hex[:10]}")
        yield s
        s.close()

    @pytest.fixture
    def reopen(self, kafka_bootstrap):
        from forgeml.plugins.kafka import KafkaEventStream

        return lambda s: KafkaEventStream({"bootstrap.servers": kafka_bootstrap}, s.topic)
