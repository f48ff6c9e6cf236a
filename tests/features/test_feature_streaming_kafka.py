"""Window views fed from a Kafka topic (3 partitions, keyed by card) on a Kafka-protocol broker on loopback.

The broker is Tansu (tests/services/kafka.sh): it speaks the Kafka protocol, with consumer-group offset
commits, but it is not Apache Kafka; confluent-kafka (librdkafka) is the client, as for real Kafka.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from test_feature_streaming import _online, _store, kill_worker_mid_stream, recent_events
from window_support import event_table, same

from forgeml.errors import ConfigError, StorageError
from forgeml.features import Aggregation

pytestmark = pytest.mark.service
COUNT_SUM = [Aggregation("count", windows=["1d"]), Aggregation("sum", "amount", ["1d"])]


@pytest.fixture
def kafka_workspace(configure, kafka_bootstrap):
    """A workspace whose stream `txns` is a fresh 3-partition topic keyed by card_id."""
    topic = f"forgeml-test-{uuid.uuid4().hex[:10]}"
    return configure(f'[streams.txns]\nplugin = "kafka"\nbootstrap_servers = "{kafka_bootstrap}"\n'
                     f'topic = "{topic}"\nkey_column = "card_id"\npartitions = 3\n')


def _check_counts(store, events, keys):
    got, _ = _online(store, keys, ["count_1d", "amount_sum_1d"])
    want = {k: [e for e in events if e["card_id"] == k] for k in keys}
    assert got["count_1d"] == [len(want[k]) for k in keys]
    assert all(same(got["amount_sum_1d"][i], float(sum(e["amount"] for e in want[k]))) for i, k in enumerate(keys))
    return got


def test_keyed_records_spread_over_partitions_and_are_applied_once(kafka_workspace):
    """Every event is applied once online and logged once offline; one card's events share one partition."""
    import pandas as pd

    from forgeml.features.streaming import run_streams

    store = _store(kafka_workspace, COUNT_SUM)
    events = recent_events(600, seed=4, keys=12)
    for start in range(0, 600, 200):
        store.publish("txns", event_table(events[start:start + 200]))
    status = run_streams(store, until_idle=True, batch_size=250, poll_timeout_s=0.5)[0]
    assert (status.applied, status.duplicates) == (600, 0)
    got = _check_counts(store, events, list(range(1, 13)))
    logged = store.offline.query(f"SELECT card_id, _partition FROM {store.offline.table_relation('txn')}")
    pairs = set(zip(logged.column("card_id").to_pylist(), logged.column("_partition").to_pylist()))
    assert len({p for _, p in pairs}) > 1, "records should spread over the topic's partitions"
    assert len(pairs) == 12, "each card's records must all sit in one partition"
    offline = store.get_historical_features(
        pd.DataFrame({"card_id": list(range(1, 13)), "event_timestamp": [datetime.now(UTC)] * 12}), ["txn:count_1d"])
    assert offline["count_1d"].tolist() == got["count_1d"]
    assert run_streams(store, until_idle=True, poll_timeout_s=0.3)[0].applied == 600  # nothing new, nothing twice


def test_records_applied_but_not_committed_are_skipped_when_they_come_back(kafka_workspace):
    """A crash between writing the state and committing the offsets replays those records; none counts twice."""
    from forgeml.features.streaming import StreamProcessor

    store = _store(kafka_workspace, COUNT_SUM)
    events = recent_events(90, seed=5, keys=6)
    store.publish("txns", event_table(events))
    view = store.get_feature_view("txn")
    first = StreamProcessor(store, view, batch_size=40, poll_timeout_s=1.0)
    first.consumer.commit = lambda positions: None  # the process dies between apply and commit
    applied = _next_step(first).applied
    assert 0 < applied <= 40
    first.consumer.close()
    second = StreamProcessor(store, view, batch_size=200, poll_timeout_s=1.0)
    second.writer.cache = {}  # a new process: states come from the online store
    total_applied, total_duplicates = 0, 0
    for _ in range(10):
        step = _next_step(second)
        total_applied += step.applied
        total_duplicates += step.duplicates
        if total_applied + total_duplicates >= 90:  # every record came back once: the replay, then the rest
            break
    assert (total_applied, total_duplicates) == (90 - applied, applied)
    _check_counts(store, events, list(range(1, 7)))


def _next_step(processor):
    """The counts of the next batch that brings records (a poll may end before the first fetch returns)."""
    for _ in range(20):
        counts = processor.step()
        if counts is not None:
            return counts
    raise AssertionError("no records arrived in 20 polls")


@pytest.mark.slow
def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing(kafka_workspace):
    """The consumer process is killed with SIGKILL while it streams; after a restart every event counts once."""
    import pandas as pd

    from forgeml.features.streaming import run_streams

    store = _store(kafka_workspace, COUNT_SUM)
    events = recent_events(20_000, seed=6, keys=50)
    store.publish("txns", event_table(events))
    killed_at = kill_worker_mid_stream(kafka_workspace, at_least=3000)
    assert 0 < killed_at < 20_000, "the consumer was not killed mid-stream"
    run_streams(store, until_idle=True, poll_timeout_s=0.5)
    keys = list(range(1, 51))
    got = _check_counts(store, events, keys)
    # the batch replayed after the kill may be logged twice; reads keep one row per (partition, offset)
    logged = store.offline.query(f"SELECT count(DISTINCT (_partition, _offset)) AS n FROM "
                                 f"{store.offline.table_relation('txn')}")
    assert logged.column("n").to_pylist() == [20_000]
    offline = store.get_historical_features(
        pd.DataFrame({"card_id": keys, "event_timestamp": [datetime.now(UTC)] * 50}), ["txn:count_1d"])
    assert offline["count_1d"].tolist() == got["count_1d"]


def test_records_that_are_not_json_objects_come_with_an_error_not_a_stuck_consumer(kafka_workspace, kafka_bootstrap):
    """A foreign producer's record that is not a JSON object is marked with why (partition and offset named);
    the records around it still arrive, and types that disagree between records arrive as text to cast."""
    import json

    from confluent_kafka import Producer

    stream = kafka_workspace.stream("txns")
    stream.ensure_topic()
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for value in (b'{"card_id": 1, "amount": 2.5}', b"\x00not json", b"[1, 2]", b'{"card_id": "two", "amount": 3}'):
        producer.produce(stream.topic, value, partition=0)
    producer.flush(10)
    consumer = stream.consumer("g-bad")
    try:
        polled = []
        for _ in range(40):
            polled.extend(consumer.poll(10, 0.5).to_pylist())
            if len(polled) >= 4:
                break
    finally:
        consumer.close()
    assert [r["_offset"] for r in polled] == [0, 1, 2, 3]
    assert [r["_error"] is None for r in polled] == [True, False, False, True]
    assert polled[1]["_error"].startswith("partition 0 offset 1: not a JSON object") and "not json" in polled[1]["_error"]
    assert "not a JSON object (a list)" in polled[2]["_error"]
    assert [(r["card_id"], r["amount"]) for r in (polled[0], polled[3])] == [("1", "2.5"), ("two", "3")]
    assert json.loads(polled[0]["amount"]) == 2.5


def test_bad_settings_are_clear_errors(configure, kafka_bootstrap):
    """A missing topic is a ConfigError; brokers nobody answers are a StorageError after timeout_s."""
    ws = configure(f'[streams.txns]\nplugin = "kafka"\nbootstrap_servers = "{kafka_bootstrap}"\n')
    with pytest.raises(ConfigError, match="needs topic"):
        ws.stream("txns")
    ws = configure('[streams.txns]\nplugin = "kafka"\nbootstrap_servers = "127.0.0.1:1"\ntopic = "t"\n'
                   'timeout_s = 1.0\n')
    with pytest.raises(StorageError, match="cannot reach 127.0.0.1:1"):
        ws.stream("txns").consumer("g")
