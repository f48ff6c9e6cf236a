"""Streaming window features: ingest through push and Redis Streams, push-to-visible latency, online reads,
and the offline window query against a hand-written DuckDB window query on the same data.

Prints one JSON line. Data is generated deterministically with numpy. Throughput is reported per
wall-clock second and per CPU second of this process (the second is steadier on a shared machine).
Redis comes from FORGEML_REDIS_PORT (default 6390, started by tests/services/redis.sh); without it
the Redis part says "skipped". Feast runs no window aggregation locally (its stream aggregations need
a Spark or Flink engine), so there is no peer figure to put beside these; the JSON says so.

    python benchmarks/streaming.py --events 200000 --keys 1000 --entity-rows 1000000 --offline-events 10000000
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import finish, peer_python  # noqa: E402

WINDOWS = ["10m", "1h", "1d"]


def aggregations():
    """Four aggregations over three windows: 12 features."""
    from forgeml.features import Aggregation

    return [Aggregation("count", windows=WINDOWS), Aggregation("sum", "amount", WINDOWS),
            Aggregation("mean", "amount", WINDOWS), Aggregation("max", "amount", WINDOWS)]


def events(n: int, keys: int, now_us: int, span_us: int, seed: int) -> pa.Table:
    """n events over keys cards, in time order, spread over span_us before now_us."""
    rng = np.random.default_rng(seed)
    ts = np.sort(now_us - rng.integers(0, span_us, n))
    return pa.table({"card_id": rng.integers(0, keys, n, dtype=np.int64),
                     "event_timestamp": pa.array(ts).cast(pa.timestamp("us", tz="UTC")),
                     "amount": np.round(rng.random(n) * 100, 2)})


def pct(values: list[float], q: float) -> float:
    """Return the q-quantile of values (sorted copy), rounded for printing."""
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 4)


def rate(count: int, seconds: float) -> int:
    """Return count per second."""
    return round(count / seconds) if seconds > 0 else 0


def redis_url() -> str | None:
    """Return the test Redis URL when a server answers there."""
    port = int(os.environ.get("FORGEML_REDIS_PORT", "6390"))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith(b"+PONG"):
                return f"redis://127.0.0.1:{port}/0"
    except OSError:
        pass
    return None


def workspace(root: Path, stream_key: str | None, url: str | None):
    """A fresh workspace, with a [streams.bench] Redis stream when Redis answers."""
    from forgeml.workspace import Workspace

    root.mkdir(parents=True)
    if url and stream_key:
        (root / "plugins.toml").write_text(f'[streams.bench]\nplugin = "redis"\nurl = "{url}"\n'
                                           f'stream = "{stream_key}"\n')
    return Workspace.init(root)


def settle() -> None:
    """Start a timed part on a quiet process: buffered writes (the access log) done, garbage collected."""
    import gc

    from forgeml.buffering import flush_all

    flush_all()
    gc.collect()


def ingest_push(store, table: pa.Table, batch: int) -> dict:
    """Push events in batches (online tiles plus the offline history)."""
    settle()
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, table.num_rows, batch):
        store.push("cards", table.slice(start, batch))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"events": table.num_rows, "events_per_s": rate(table.num_rows, wall),
            "events_per_cpu_s": rate(table.num_rows, cpu)}


def ingest_redis(store, table: pa.Table, batch: int, redis_url: str) -> dict:
    """Publish every event to Redis first (timed apart), then time the stream processor from its first poll
    until it has applied and committed them all: the ingest rate, with no producer sharing the CPUs."""
    from forgeml.features.streaming import run_streams

    wall = time.perf_counter()
    store.publish("bench", table)
    publish_s = time.perf_counter() - wall
    server = redis_cpu_s(redis_url)
    wall, cpu = time.perf_counter(), time.process_time()
    status = run_streams(store, ["cards_stream"], until_idle=True, batch_size=batch, poll_timeout_s=0.2)[0]
    wall, cpu = time.perf_counter() - wall - 0.2, time.process_time() - cpu  # minus the last, empty poll
    server = redis_cpu_s(redis_url) - server
    return {"events": status.applied, "events_per_s": rate(status.applied, wall),
            "events_per_cpu_s": rate(status.applied, cpu), "batch": batch, "batches": status.batches,
            "redis_server_cpu_s": round(server, 3), "parser": parser_name(),
            "produced": "all published before the timed run", "publish_events_per_s": rate(table.num_rows, publish_s)}


def redis_cpu_s(url: str) -> float:
    """Return the CPU seconds the redis-server process has used so far."""
    import redis

    info = redis.Redis.from_url(url).info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def parser_name() -> str:
    """Return which RESP parser redis-py uses here (the Python one costs several times more per event)."""
    from redis.utils import HIREDIS_AVAILABLE

    return "hiredis" if HIREDIS_AVAILABLE else "python (pip install hiredis)"


def visible_within(start: float, worker: threading.Thread | None = None, limit_s: float = 60) -> None:
    """Fail instead of waiting forever for an event that never shows (a dead processor, a dropped event)."""
    if worker is not None and not worker.is_alive():
        raise RuntimeError("the stream processor thread stopped; see its traceback above")
    if time.perf_counter() - start > limit_s:
        raise RuntimeError(f"an event was not visible online after {limit_s:g}s")


def push_to_visible(store, keys: int, calls: int, to: str = "online_and_offline") -> dict:
    """Time from push() of one event to get_online_features returning a count that includes it."""
    from datetime import UTC, datetime

    rng = np.random.default_rng(11)
    settle()
    lat = []
    for key in rng.integers(0, keys, calls).tolist():
        before = store.get_online_features([{"card_id": key}], ["cards:count_10m"]).to_dict()["count_10m"][0]
        start = time.perf_counter()
        store.push("cards", pa.table({"card_id": [key], "event_timestamp": pa.array(
            [datetime.now(UTC)], pa.timestamp("us", tz="UTC")), "amount": [1.0]}), to=to)
        while store.get_online_features([{"card_id": key}], ["cards:count_10m"]).to_dict()["count_10m"][0] <= before:
            visible_within(start)
        lat.append((time.perf_counter() - start) * 1000)
    return {"calls": calls, "to": to, "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}


def stream_to_visible(store, keys: int, calls: int) -> dict:
    """Time from publishing one event to Redis to it being served, with the processor running in a thread."""
    from datetime import UTC, datetime

    from forgeml.features.streaming import run_streams

    stop = threading.Event()
    worker = threading.Thread(target=run_streams, args=(store, ["cards_stream"]),
                              kwargs={"poll_timeout_s": 0.05, "should_stop": stop.is_set}, daemon=True)
    worker.start()
    rng = np.random.default_rng(12)
    settle()
    lat = []
    try:
        for key in rng.integers(0, keys, calls).tolist():
            ref = ["cards_stream:count_10m"]
            before = store.get_online_features([{"card_id": key}], ref).to_dict()["count_10m"][0]
            start = time.perf_counter()
            store.publish("bench", pa.table({"card_id": [key], "event_timestamp": pa.array(
                [datetime.now(UTC)], pa.timestamp("us", tz="UTC")), "amount": [1.0]}))
            while store.get_online_features([{"card_id": key}], ref).to_dict()["count_10m"][0] <= before:
                visible_within(start, worker)
                time.sleep(0.0002)
            lat.append((time.perf_counter() - start) * 1000)
    finally:
        stop.set()
        worker.join(timeout=10)
    return {"calls": calls, "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}


def online_reads(store, keys: int, calls: int) -> dict:
    """One entity, 4 aggregations x 3 windows, in process."""
    refs = [f"cards:{a}_{w}" for a in ("count", "amount_sum", "amount_mean", "amount_max") for w in WINDOWS]
    rng = np.random.default_rng(13)
    ids = rng.integers(0, keys, calls).tolist()
    for i in ids[:200]:
        store.get_online_features([{"card_id": i}], refs)
    settle()
    lat, cpu = [], []
    for i in ids:
        start, start_cpu = time.perf_counter(), time.thread_time()
        out = store.get_online_features([{"card_id": i}], refs).to_dict()
        lat.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)
    assert len(out) == 13
    return {"features": len(refs), "calls": calls, "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99),
            "cpu_p50_ms": pct(cpu, 0.5), "cpu_p99_ms": pct(cpu, 0.99)}


def offline(args, work: Path) -> dict:
    """get_historical_features over a Parquet event source vs one hand-written DuckDB window query."""
    import duckdb

    from forgeml.features import Entity, FeatureView, FileSource
    from forgeml.features.service import FeatureStore
    from forgeml.workspace import Workspace

    base_us = 1_700_000_000_000_000
    day = 86_400_000_000
    path = work / "events.parquet"
    rng = np.random.default_rng(21)
    n, users = args.offline_events, args.offline_keys
    pq.write_table(pa.table({
        "card_id": rng.integers(0, users, n, dtype=np.int64),
        "event_timestamp": pa.array(base_us + rng.integers(0, 30 * day, n)).cast(pa.timestamp("us", tz="UTC")),
        "amount": np.round(rng.random(n) * 100, 2)}), path)
    entity = pa.table({"card_id": rng.integers(0, users, args.entity_rows, dtype=np.int64),
                       "event_timestamp": pa.array(base_us + rng.integers(2 * day, 30 * day, args.entity_rows)).cast(
                           pa.timestamp("us", tz="UTC"))})
    ws = Workspace.init(work / "ws_offline")
    store = FeatureStore(ws)
    card = Entity("card", join_keys=["card_id"])
    store.apply([card, FeatureView("cards", entities=[card], source=FileSource(str(path)),
                                   aggregations=aggregations())])
    refs = [f"cards:{f}" for f in store.get_feature_view("cards").feature_names]
    ours = []
    for _ in range(2):
        start = time.perf_counter()
        result = store.get_historical_features(entity, refs)
        ours.append(time.perf_counter() - start)
    assert result.num_rows == entity.num_rows
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("entity_rows", entity)
    frames = ", ".join(f"w{i} AS (PARTITION BY card_id ORDER BY t RANGE BETWEEN {s} PRECEDING AND CURRENT ROW)"
                       for i, s in enumerate((600_000_000, 3_600_000_000, day)))
    aggs = ", ".join(f"count(amount) OVER w{i}, sum(amount) OVER w{i}, avg(amount) OVER w{i}, max(amount) OVER w{i}"
                     for i in range(3))
    hand = (f"SELECT * FROM (SELECT q, {aggs} FROM (SELECT card_id, epoch_us(event_timestamp) AS t, amount, 0 AS q "
            f"FROM read_parquet('{path}') UNION ALL SELECT card_id, epoch_us(event_timestamp), NULL, 1 "
            f"FROM entity_rows) WINDOW {frames}) WHERE q = 1")
    duck = []
    for _ in range(2):
        start = time.perf_counter()
        rows = con.sql(hand).to_arrow_table()
        duck.append(time.perf_counter() - start)
    assert rows.num_rows == entity.num_rows
    ws.close()
    return {"entity_rows": args.entity_rows, "events": n, "keys": users, "features": len(refs),
            "forgeml_s": round(min(ours), 2), "duckdb_hand_written_s": round(min(duck), 2),
            "ratio": round(min(ours) / min(duck), 2), "rows_returned": result.num_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events ingested through each path")
    parser.add_argument("--keys", type=int, default=1_000, help="cards the streamed events are spread over")
    parser.add_argument("--batch", type=int, default=10_000, help="events per push")
    parser.add_argument("--stream-batch", type=int, default=50_000,
                        help="most events the stream processor applies and commits at once (its default)")
    parser.add_argument("--latency-calls", type=int, default=300)
    parser.add_argument("--read-calls", type=int, default=2_000)
    parser.add_argument("--entity-rows", type=int, default=1_000_000)
    parser.add_argument("--offline-events", type=int, default=10_000_000)
    parser.add_argument("--offline-keys", type=int, default=100_000)
    parser.add_argument("--skip-offline", action="store_true")
    parser.add_argument("--compaction-files", type=int, default=5000,
                        help="small pushed files read before and after compaction (0: skip)")
    args = parser.parse_args()
    from forgeml.features import Entity, FeatureView, PushSource, StreamSource
    from forgeml.features.service import FeatureStore

    work = Path(tempfile.mkdtemp(prefix="forgeml-streaming-"))
    url = redis_url()
    key = f"forgeml-bench:{uuid.uuid4().hex}"
    ws = workspace(work / "ws", key, url)
    store = FeatureStore(ws)
    card = Entity("card", join_keys=["card_id"])
    views = [card, FeatureView("cards", entities=[card], source=PushSource("cards"), aggregations=aggregations())]
    if url:
        views.append(FeatureView("cards_stream", entities=[card], source=StreamSource("bench"),
                                 aggregations=aggregations()))
    store.apply(views)
    now_us = int(time.time() * 1_000_000)
    table = events(args.events, args.keys, now_us, 3_600_000_000, seed=1)
    result: dict = {"events": args.events, "keys": args.keys,
                    "aggregations": 4, "windows": WINDOWS, "batch": args.batch}
    result["ingest_push"] = ingest_push(store, table, args.batch)
    result["push_to_visible"] = push_to_visible(store, args.keys, args.latency_calls)
    # the same without the offline append (one Parquet file per single-event push dominates the above)
    result["push_online_only_to_visible"] = push_to_visible(store, args.keys, args.latency_calls, "online")
    result["online_read_4x3"] = online_reads(store, args.keys, args.read_calls)
    if url:
        try:
            result["ingest_redis_streams"] = ingest_redis(store, table, args.stream_batch, url)
            result["redis_publish_to_visible"] = stream_to_visible(store, args.keys, args.latency_calls // 3)
        finally:
            import redis

            redis.Redis.from_url(url).delete(key)
    else:
        result["ingest_redis_streams"] = {"skipped": "no redis-server answers on FORGEML_REDIS_PORT "
                                                     "(start it with tests/services/redis.sh start)"}
    ws.close()
    if not args.skip_offline:
        result["offline_windows"] = offline(args, work)
    if args.compaction_files:
        from offline_compaction import run as compaction

        result["offline_compaction"] = compaction(args.compaction_files, work=work)
    python, how = peer_python("feast")
    result["feast"] = {"skipped": "Feast computes no window aggregation locally (its stream feature views "
                                  "aggregate only on a Spark or Flink engine), so there is no same-machine run "
                                  f"to put beside these; feast: {how if python else 'not found: ' + how}"}
    floors = {
        "ingest_push_100k_events_per_s": result["ingest_push"]["events_per_s"] >= 100_000,
        "push_to_visible_p99_below_10ms": result["push_to_visible"]["p99_ms"] < 10,
        "push_online_only_to_visible_p99_below_10ms": result["push_online_only_to_visible"]["p99_ms"] < 10,
        "online_read_p99_below_0.5ms": result["online_read_4x3"]["p99_ms"] < 0.5,
    }
    if "events_per_s" in result["ingest_redis_streams"]:
        floors["ingest_redis_100k_events_per_s"] = result["ingest_redis_streams"]["events_per_s"] >= 100_000
    if "offline_windows" in result:
        floors["offline_within_3x_duckdb"] = result["offline_windows"]["ratio"] <= 3
    result["floors_met"] = floors
    finish("streaming", result)


if __name__ == "__main__":
    main()
