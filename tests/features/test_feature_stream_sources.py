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
