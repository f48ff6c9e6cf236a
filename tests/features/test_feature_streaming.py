"""Stream processing into window views: Redis Streams and file folders, restarts, kill -9, backfill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from window_support import AGGREGATIONS, US, event_table, expected, same

from forgeml.features import Aggregation, Entity, FeatureView, StreamSource
from forgeml.features.aggregations import window_features

CARD = Entity("card", join_keys=["card_id"])


def recent_events(n: int, seed: int = 0, keys: int = 5) -> list[dict]:
    import random

    rnd = random.Random(seed)
    now = datetime.now(UTC)
    return [{"card_id": rnd.randint(1, keys), "event_timestamp": now - timedelta(seconds=rnd.uniform(60, 3000)),
             "amount": float(rnd.randint(1, 100)), "merchant": rnd.choice("abcdef")} for _ in range(n)]


def kill_worker_mid_stream(ws, at_least: int, view: str = "txn", deadline_s: float = 90) -> int:
    """Run the view's stream worker as a process, SIGKILL it once it applied at_least events; return how many it had."""
    from forgeml.features.streaming import read_status

    env = {**os.environ, "FORGEML_HOME": str(ws.root)}
    worker = subprocess.Popen([sys.executable, "-m", "forgeml.features.streaming", "--batch", "300", view], env=env)
    try:
        deadline = time.monotonic() + deadline_s
        while read_status(ws, view).applied < at_least and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    return read_status(ws, view).applied


@pytest.fixture
def redis_workspace(configure, redis_url):
    key = f"forgeml-test:{uuid.uuid4().hex}"
    ws = configure(f'[streams.txns]\nplugin = "redis"\nurl = "{redis_url}"\nstream = "{key}"\n')
    yield ws
    import redis

    redis.Redis.from_url(redis_url).delete(key)


@pytest.fixture
def file_workspace(configure):
    return configure('[streams.txns]\nplugin = "files"\npath = "events"\n')


def _store(ws, aggregations=AGGREGATIONS):
    from forgeml.features.service import store_for

    store = store_for(ws)
    store.apply([FeatureView("txn", entities=[CARD], source=StreamSource("txns"), aggregations=aggregations)])
    return store


def _online(store, keys, features):
    got = store.get_online_features([{"card_id": k} for k in keys], [f"txn:{f}" for f in features])
    return got.to_dict(), int(got.served_at * US)


@pytest.mark.service
@pytest.mark.parametrize("kind", ["redis", "file"])
def test_streamed_events_are_served_and_kept_offline(request, kind):
    """Events published to the stream are applied by the processor; online and offline both match the definition."""
    import pandas as pd

    from forgeml.features.streaming import read_status, run_streams

    ws = request.getfixturevalue(f"{kind}_workspace")
    store = _store(ws)
    events = recent_events(400, seed=1)
    for start in range(0, 400, 100):  # several publishes, so the processor sees several batches
        store.publish("txns", event_table(events[start:start + 100]))
    statuses = run_streams(store, until_idle=True, batch_size=150, poll_timeout_s=0.2)
    assert statuses[0].applied == 400 and statuses[0].duplicates == 0
    assert read_status(ws, "txn").applied == 400
    names = [w.name for w in window_features(AGGREGATIONS)]
    got, at_us = _online(store, [1, 2, 3, 4, 5, 6], names)
    for w in window_features(AGGREGATIONS):
        for i, key in enumerate([1, 2, 3, 4, 5, 6]):
            assert same(got[w.name][i], expected(events, key, at_us, w)), (w.name, key)
    now = datetime.fromtimestamp(at_us / US, UTC)
    offline = store.get_historical_features(pd.DataFrame({"card_id": [1, 2, 3], "event_timestamp": [now] * 3}),
                                            ["txn:count_1h", "txn:amount_sum_1h"])
    assert offline["count_1h"].tolist() == got["count_1h"][:3]
    # running again reads nothing new and changes nothing
    assert run_streams(store, until_idle=True, poll_timeout_s=0.1)[0].applied == 400
    assert _online(store, [1], ["count_1h"])[0]["count_1h"] == got["count_1h"][:1]


@pytest.mark.service
def test_a_replay_of_uncommitted_records_counts_nothing_twice(redis_workspace):
    """Records applied but never committed (a crash before the commit) come back and are skipped."""
    from forgeml.features.streaming import StreamProcessor

    store = _store(redis_workspace, [Aggregation("count", windows=["1d"])])
    events = recent_events(50, seed=2)
    store.publish("txns", event_table(events))
    view = store.get_feature_view("txn")
    first = StreamProcessor(store, view, batch_size=30, poll_timeout_s=0.2)
    first.consumer.commit = lambda positions: None  # the process dies between apply and commit
    assert first.step().applied == 30
    second = StreamProcessor(store, view, batch_size=100, poll_timeout_s=0.2)
    second.writer.cache = {}  # a new process: states come from the online store
    replay = second.step()  # the uncommitted records come again, before the new ones
    assert (replay.applied, replay.duplicates) == (20, 30)
    assert second.step() is None
    got, _ = _online(store, [1, 2, 3, 4, 5], ["count_1d"])
    assert sum(got["count_1d"]) == 50


@pytest.mark.service
@pytest.mark.slow
def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing(redis_workspace):
    """The worker process is killed with SIGKILL while it streams; after a restart every event counts once."""
    import pandas as pd

    from forgeml.features.streaming import run_streams

    store = _store(redis_workspace, [Aggregation("count", windows=["1d"]), Aggregation("sum", "amount", ["1d"])])
    events = recent_events(20_000, seed=3, keys=50)
    store.publish("txns", event_table(events))
    killed_at = kill_worker_mid_stream(redis_workspace, at_least=3000)
    assert 0 < killed_at < 20_000, "the worker was not killed mid-stream"
    run_streams(store, until_idle=True, poll_timeout_s=0.3)
    keys = list(range(1, 51))
    got, _ = _online(store, keys, ["count_1d", "amount_sum_1d"])
    want = {k: [e for e in events if e["card_id"] == k] for k in keys}
    assert got["count_1d"] == [len(want[k]) for k in keys]
    assert all(same(got["amount_sum_1d"][i], float(sum(e["amount"] for e in want[k]))) for i, k in enumerate(keys))
    offline = store.get_historical_features(
        pd.DataFrame({"card_id": keys, "event_timestamp": [datetime.now(UTC)] * 50}), ["txn:count_1d"])
    assert offline["count_1d"].tolist() == got["count_1d"]  # the offline log holds each record once


@pytest.mark.service
def test_backfill_rebuilds_the_online_state(file_workspace):
    """Deleting the online tiles and backfilling from the offline log gives the same values back."""
    from forgeml.features.streaming import run_streams
    from forgeml.features.tiles import state_view

    store = _store(file_workspace)
    events = recent_events(300, seed=4)
    store.publish("txns", event_table(events))
    run_streams(store, until_idle=True, poll_timeout_s=0.2)
    names = [w.name for w in window_features(AGGREGATIONS)]
    before, _ = _online(store, [1, 2, 3], names)
    store.online.delete_view(state_view("txn"))
    assert _online(store, [1], ["count_1h"])[0]["count_1h"] == [0]
    result = store.backfill("txn")
    assert result["events"] == 300 and result["entities"] == 5
    after, _ = _online(store, [1, 2, 3], names)
    for name in names:
        assert all(same(a, b) for a, b in zip(before[name], after[name])), name
    # positions survive the backfill: the processor replays nothing
    assert run_streams(store, until_idle=True, poll_timeout_s=0.1)[0].duplicates == 0
    assert _online(store, [1, 2, 3], ["count_1h"])[0]["count_1h"] == before["count_1h"]


def test_the_stream_commands(file_workspace, tmp_path):
    """publish, stream --until-idle, streams and backfill from the CLI; errors are one line."""
    import json

    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from forgeml.cli import cli

    _store(file_workspace, [Aggregation("count", windows=["1h"])])
    path = tmp_path / "batch.parquet"
    pq.write_table(event_table(recent_events(40, seed=5)), path)
    runner = CliRunner()
    published = runner.invoke(cli, ["features", "publish", "txns", str(path)])
    assert published.exit_code == 0 and "40 records published" in published.output
    streamed = runner.invoke(cli, ["features", "stream", "--until-idle"])
    assert streamed.exit_code == 0 and "txn: applied 40" in streamed.output, streamed.output
    listed = json.loads(runner.invoke(cli, ["features", "streams", "--json"]).output)
    assert listed[0]["view"] == "txn" and listed[0]["applied"] == 40 and listed[0]["duplicates"] == 0
    rebuilt = json.loads(runner.invoke(cli, ["features", "backfill", "txn", "--json"]).output)
    assert rebuilt["events"] == 40
    unknown = runner.invoke(cli, ["features", "stream", "nope"])
    assert unknown.exit_code != 0 and "unknown feature view 'nope'" in str(unknown.exception)


@pytest.mark.service
@pytest.mark.slow
def test_the_supervised_stream_process_restarts_its_worker_and_stops_on_sigterm(redis_workspace):
    """`forgeml features stream` keeps a worker running (a killed one is restarted) and exits 0 on SIGTERM."""
    from forgeml.features.streaming import read_status

    store = _store(redis_workspace, [Aggregation("count", windows=["1d"])])
    env = {**os.environ, "FORGEML_HOME": str(redis_workspace.root)}
    proc = subprocess.Popen([sys.executable, "-m", "forgeml", "features", "stream", "txn"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        store.publish("txns", event_table(recent_events(30, seed=6)))
        deadline = time.monotonic() + 60
        while read_status(redis_workspace, "txn").applied < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        first = read_status(redis_workspace, "txn")
        assert first.applied == 30
        os.kill(first.pid, signal.SIGKILL)  # the worker dies; the supervisor starts another
        store.publish("txns", event_table(recent_events(20, seed=7)))
        while read_status(redis_workspace, "txn").applied < 50 and time.monotonic() < deadline + 30:
            time.sleep(0.1)
        second = read_status(redis_workspace, "txn")
        assert second.applied == 50 and second.pid != first.pid
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
        assert "restarting" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.service
@pytest.mark.parametrize("kind", ["redis", "file"])
def test_streamed_events_from_the_future_are_set_aside_as_pushes_refuse_them(request, kind, caplog):
    """An event beyond now + [features].max_future_skew_s would pin the online value: the stream processor
    applies the push's check, sets such events aside (counted, logged, committed) and applies the rest."""
    from forgeml.features.streaming import read_status, run_streams

    ws = request.getfixturevalue(f"{kind}_workspace")
    store = _store(ws)
    events = recent_events(50, seed=3, keys=2)
    ahead = [{**e, "event_timestamp": datetime.now(UTC) + timedelta(hours=2)} for e in recent_events(7, seed=4, keys=2)]
    store.publish("txns", event_table(events + ahead))
    with caplog.at_level("WARNING", logger="forgeml.features"):
        [status] = run_streams(store, until_idle=True, poll_timeout_s=0.2)
    assert (status.applied, status.future) == (50, 7)
    assert read_status(ws, "txn").future == 7
    assert "set aside 7 event(s) more than 300s in the future" in caplog.text
    # nothing from the future reached the tiles: every window equals the past events' own
    got, at_us = _online(store, [1, 2], [w.name for w in window_features(AGGREGATIONS)])
    for w in window_features(AGGREGATIONS):
        for i, key in enumerate([1, 2]):
            assert same(got[w.name][i], expected(events, key, at_us, w)), (w.name, key)
    # and none went offline; a second run finds nothing new (they were committed)
    assert store.offline.query(f"SELECT count(*) AS n FROM {store.offline.table_relation('txn')}").column("n")[0].as_py() \
        == 50
    [again] = run_streams(store, until_idle=True, poll_timeout_s=0.2)
    assert (again.applied, again.future) == (50, 7)


def _stream_with_bad_records(ws, redis_url, bad: list[dict], batch_size: int = 100):
    """Stream 20 good events, the bad records (raw Redis entries) and 10 more good ones; return what came out."""
    import redis

    from forgeml.features.dead_letters import dead_letter_path, read_dead_letters
    from forgeml.features.streaming import run_streams

    store = _store(ws, [Aggregation("count", windows=["1d"]), Aggregation("sum", "amount", ["1d"])])
    store.publish("txns", event_table(recent_events(20, seed=8)))
    client = redis.Redis.from_url(redis_url)
    key = store.workspace.stream("txns").stream
    last = [client.xadd(key, fields) for fields in bad][-1]
    store.publish("txns", event_table(recent_events(10, seed=9)))
    status = run_streams(store, ["txn"], until_idle=True, batch_size=batch_size, poll_timeout_s=0.2)[0]
    assert (status.applied, status.dead_letters) == (30, len(bad))
    got, _ = _online(store, [1, 2, 3, 4, 5], ["count_1d"])
    assert sum(got["count_1d"]) == 30
    return store, key, last, read_dead_letters(dead_letter_path(store.workspace, "txn"))


@pytest.mark.service
def test_records_that_cannot_be_cast_go_to_dead_letters_and_the_stream_goes_on(redis_workspace, redis_url):
    """Malformed records (text amount, bad time, bad key) are set aside with the reason; the rest is applied."""
    import json

    from click.testing import CliRunner

    from forgeml.cli import cli
    from forgeml.features.dead_letters import DeadLetters
    from forgeml.features.streaming import read_status

    stamp = datetime.now(UTC).isoformat()
    store, key, _, dead = _stream_with_bad_records(redis_workspace, redis_url, [
        {"card_id": "1", "amount": "abc", "event_timestamp": stamp},
        {"card_id": "2", "amount": "3.0", "event_timestamp": "yesterday"},
        {"card_id": "x", "amount": "3.0", "event_timestamp": stamp}])
    assert [d["record"]["card_id"] for d in dead] == ["1", "2", "x"]
    assert "'amount'" in dead[0]["reason"] and "'event_timestamp'" in dead[1]["reason"]
    assert "'card_id'" in dead[2]["reason"] and all(d["partition"] == key for d in dead)
    # a replay after a crash before the commit writes them again: positions already held are skipped
    again = [(dict(d["record"], _partition=d["partition"], _offset=d["offset"]), d["reason"]) for d in dead]
    assert DeadLetters(store.workspace, "txn").write("txns", again) == 0
    assert read_status(store.workspace, "txn").dead_letters == 3
    listed = json.loads(CliRunner().invoke(cli, ["features", "streams", "--json"]).output)
    assert listed[0]["dead_letters"] == 3


@pytest.mark.service
def test_records_that_are_not_utf8_go_to_dead_letters_and_the_rest_is_committed(redis_workspace, redis_url):
    """Bytes that are not UTF-8 fail neither the poll nor the batch: those records are set aside, the rest applied."""
    from forgeml.features.streaming import run_streams
    from forgeml.plugins.redis_streams import offset_of

    stamp = datetime.now(UTC).isoformat()
    store, key, last, dead = _stream_with_bad_records(redis_workspace, redis_url, [
        {"card_id": "1", "amount": b"4\xff", "event_timestamp": stamp},
        {"card_id": "2", "amount": "5.0", "event_timestamp": stamp, "note": b"\xfe"}], batch_size=1000)
    assert [d["record"]["amount"] for d in dead] == ["4\\xff", "5.0"]
    assert "'amount' is not UTF-8" in dead[0]["reason"] and "'note' is not UTF-8" in dead[1]["reason"]
    # everything, the dead letters included, is committed: the group's position is past them
    assert store.workspace.stream("txns").consumer("txn").committed()[key] > offset_of(last)
    assert run_streams(store, ["txn"], until_idle=True, poll_timeout_s=0.1)[0].dead_letters == 2


def test_a_push_can_set_bad_rows_aside(file_workspace):
    """push(bad_rows="dead_letter") applies the rows that cast and keeps the others with the reason."""
    import pyarrow as pa

    from forgeml.errors import ValidationError
    from forgeml.features import PushSource
    from forgeml.features.dead_letters import dead_letter_path, read_dead_letters
    from forgeml.features.service import store_for

    store = store_for(file_workspace)
    store.apply([FeatureView("pushed", entities=[CARD], source=PushSource("pushed"),
                             aggregations=[Aggregation("sum", "amount", ["1d"])])])
    stamp = datetime.now(UTC).isoformat()
    rows = pa.table({"card_id": ["1", "1", "one"], "amount": ["2.5", "oops", "1"], "event_timestamp": [stamp] * 3})
    with pytest.raises(ValidationError, match="card_id"):
        store.push("pushed", rows)
    assert store.push("pushed", rows, bad_rows="dead_letter") == 1
    dead = read_dead_letters(dead_letter_path(file_workspace, "pushed"))
    assert [(d["source"], d["record"]["amount"]) for d in dead] == [("push", "oops"), ("push", "1")]
    got = store.get_online_features([{"card_id": 1}], ["pushed:amount_sum_1d"]).to_dict()
    assert got["amount_sum_1d"] == [2.5]
