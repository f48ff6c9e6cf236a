"""Feature store benchmark: point-in-time join vs a raw DuckDB ASOF JOIN (and Feast when installed), online reads, push.

Prints one JSON line. Data is generated deterministically with numpy and written to Parquet once
(cached under the system temp folder). Sizes can be shrunk for a quick run:

    python benchmarks/features.py --entities 100000 --rows 1000000 --users 100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from common import comparison, finish

BASE = datetime(2024, 1, 1, tzinfo=UTC)
DAY_US = 86_400_000_000
TTL_DAYS = 30
FEATURES = ("f1", "f2", "f3")


def make_data(folder: Path, users: int, rows: int, entities: int, seed: int = 42) -> tuple[Path, pa.Table]:
    """Write the feature rows once (deterministic) and return their path and the entity rows."""
    path = folder / f"features_u{users}_r{rows}.parquet"
    base_us = int(BASE.timestamp() * 1_000_000)
    rng = np.random.default_rng(seed)
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        writer = None
        chunk = 2_000_000
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            table = pa.table({
                "user_id": rng.integers(0, users, n, dtype=np.int64),
                "event_timestamp": pa.array(base_us + rng.integers(0, 90 * DAY_US, n, dtype=np.int64)).cast(
                    pa.timestamp("us", tz="UTC")),
                **{f: rng.random(n) for f in FEATURES},
            })
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        writer.close()
        tmp.rename(path)
    erng = np.random.default_rng(seed + 1)
    entity = pa.table({
        "user_id": erng.integers(0, users, entities, dtype=np.int64),
        "event_timestamp": pa.array(base_us + erng.integers(30 * DAY_US, 90 * DAY_US, entities, dtype=np.int64)).cast(
            pa.timestamp("us", tz="UTC")),
    })
    return path, entity


def timed(fn):
    """Return (seconds, result) of one call."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def raw_asof_query(path: Path, entity: pa.Table):
    """Return a function running the plain DuckDB ASOF JOIN on the same Parquet (no TTL, no ordering)."""
    import duckdb

    con = duckdb.connect()
    con.register("entity", entity)
    sql = (f"SELECT e.*, {', '.join('f.' + f for f in FEATURES)} FROM entity e ASOF LEFT JOIN "
           f"read_parquet('{path}') f ON e.user_id = f.user_id AND e.event_timestamp >= f.event_timestamp")
    return lambda: con.sql(sql).to_arrow_table()


def feast_side(kind: str, *args: str) -> dict:
    """Run Feast's side (benchmarks/peers/feast_side.py) with an interpreter that has feast, or say it was skipped."""
    from common import peer_python, run_peer

    python, how = peer_python("feast")
    if python is None:
        return {"skipped": how}
    return {**run_peer(python, Path(__file__).parent / "peers" / "feast_side.py", kind, *args), "ran_in": how}


def pit(args, work: Path) -> dict:
    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, FileSource
    from forgeml.workspace import Workspace

    path, entity = make_data(Path(args.data), args.users, args.rows, args.entities)
    ws = Workspace.init(work / "ws")
    store = FeatureStore(ws)
    user = Entity("user", join_keys=["user_id"])
    store.apply([user, FeatureView("stats", entities=[user], source=FileSource(str(path)),
                                   features=[Feature(f) for f in FEATURES], ttl=timedelta(days=TTL_DAYS))])
    refs = [f"stats:{f}" for f in FEATURES]
    raw = raw_asof_query(path, entity)
    cold, ours = timed(lambda: store.get_historical_features(entity, refs))
    raw_cold, _ = timed(raw)
    # warm runs alternate so a busy moment on a shared machine hits both sides alike; best of two each, as
    # Feast's side gets
    warm_runs, raw_runs = [], []
    for _ in range(2):
        seconds, ours = timed(lambda: store.get_historical_features(entity, refs))
        warm_runs.append(seconds)
        raw_runs.append(timed(raw)[0])
    warm, raw_warm = min(warm_runs), min(raw_runs)
    # agreement on a sample: the raw join with TTL applied by hand must give our values
    sample = np.random.default_rng(0).choice(entity.num_rows, size=min(2000, entity.num_rows), replace=False)
    ours_rows = ours.take(pa.array(sample)).to_pylist()
    ttl_us = TTL_DAYS * DAY_US
    ts_check = _raw_with_ttl(path, entity, sample, ttl_us)
    agree = all(ours_rows[i]["f1"] == ts_check[i] for i in range(len(sample)))
    result = {
        "entity_rows": entity.num_rows, "feature_rows": args.rows, "users": args.users, "features": len(FEATURES),
        "forgeml_cold_s": round(cold, 3), "forgeml_warm_s": round(warm, 3),
        "raw_asof_cold_s": round(raw_cold, 3), "raw_asof_warm_s": round(raw_warm, 3),
        "overhead_vs_raw_asof_warm": round(warm / raw_warm, 2),
        "forgeml_warm_runs_s": [round(x, 3) for x in warm_runs], "raw_asof_warm_runs_s": [round(x, 3) for x in raw_runs],
        "rows_returned": ours.num_rows, "rows_with_values": ours.num_rows - ours.column("f1").null_count,
        "sample_agrees_with_raw_asof_plus_ttl": agree, "floor_10s_met": warm < 10,
    }
    # materialize the whole history: the newest row per user, written to the SQLite online store
    end = BASE + timedelta(days=91)
    mat_s, mat = timed(lambda: store.materialize(end=end))
    result["materialize_s"] = round(mat_s, 3)
    result["materialize_keys_written"] = mat[0]["rows"]
    result["materialize_source_rows_per_s"] = round(args.rows / mat_s)
    entity_path = work / "entity.parquet"
    pq.write_table(entity, entity_path)
    feast = feast_side("pit", str(path), str(entity_path), str(work / "feast_pit"), str(TTL_DAYS))
    result["feast"] = feast
    if "cold_s" in feast:
        name = f"feast {feast['version']} (file offline store)"
        result["comparisons"] = [
            comparison("PIT join, cold", result["forgeml_cold_s"], feast["cold_s"], "s", name),
            comparison("PIT join, warm (best of 2)", result["forgeml_warm_s"], feast["warm_s"], "s", name,
                       note=f"feast returned {feast['rows_returned']} of {entity.num_rows} entity rows"),
        ]
    ws.close()
    return result


def _raw_with_ttl(path: Path, entity: pa.Table, sample, ttl_us: int) -> list:
    """Brute-force-ish check of sampled rows with DuckDB: the latest f1 within TTL, per sampled entity row."""
    import duckdb

    con = duckdb.connect()
    picked = entity.take(pa.array(sample)).append_column("i", pa.array(np.arange(len(sample))))
    con.register("picked", picked)
    rows = con.sql(
        f"SELECT p.i, arg_max(f.f1, f.event_timestamp) AS f1 FROM picked p LEFT JOIN read_parquet('{path}') f "
        f"ON f.user_id = p.user_id AND f.event_timestamp <= p.event_timestamp "
        f"AND f.event_timestamp >= p.event_timestamp - to_microseconds({ttl_us}) GROUP BY p.i ORDER BY p.i"
    ).fetchall()
    con.close()
    return [r[1] for r in rows]


def online(args, work: Path) -> dict:
    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, PushSource
    from forgeml.workspace import Workspace

    ws = Workspace.init(work / "ws_online")
    store = FeatureStore(ws)
    user = Entity("user", join_keys=["user_id"])
    store.apply([user, FeatureView("live", entities=[user], source=PushSource("live_push"),
                                   features=[Feature(f) for f in FEATURES])])
    rng = np.random.default_rng(7)
    users = args.online_users
    now_us = int(time.time() * 1_000_000)
    rows = pa.table({"user_id": np.arange(users, dtype=np.int64),
                     "event_timestamp": pa.array(now_us - rng.integers(0, 3600_000_000, users)).cast(
                         pa.timestamp("us", tz="UTC")),
                     **{f: rng.random(users) for f in FEATURES}})
    batch = 10_000
    cpu_start = time.thread_time()
    push_online_s, _ = timed(lambda: [store.push("live", rows.slice(i, batch), to="online")
                                      for i in range(0, users, batch)])
    push_online_cpu = time.thread_time() - cpu_start
    store.online.delete_view("live")
    cpu_start = time.thread_time()
    push_both_s, _ = timed(lambda: [store.push("live", rows.slice(i, batch)) for i in range(0, users, batch)])
    push_both_cpu = time.thread_time() - cpu_start
    refs = [f"live:{f}" for f in FEATURES]
    ids = rng.integers(0, users, 2000).tolist()
    for i in ids[:200]:  # warm caches and prepared statements
        store.get_online_features([{"user_id": i}], refs).to_dict()
    lat, cpu = [], []
    for i in ids:
        start, start_cpu = time.perf_counter(), time.thread_time()
        store.get_online_features([{"user_id": i}], refs).to_dict()
        lat.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)
    lat.sort()
    cpu.sort()
    online_path, ids_path = work / "online_rows.parquet", work / "online_ids.json"
    pq.write_table(rows, online_path)
    ids_path.write_text(json.dumps(ids))
    feast = feast_side("online", str(online_path), str(ids_path), str(work / "feast_online"))
    many, many_cpu = [], []
    for _ in range(30):
        keys = [{"user_id": int(i)} for i in rng.integers(0, users, 1000)]
        start, start_cpu = time.perf_counter(), time.thread_time()
        out = store.get_online_features(keys, refs).to_dict()
        many.append((time.perf_counter() - start) * 1000)
        many_cpu.append((time.thread_time() - start_cpu) * 1000)
    assert len(out["f1"]) == 1000 and None not in out["f1"]
    ws.close()
    p50, p99 = round(lat[len(lat) // 2], 4), round(lat[int(len(lat) * 0.99) - 1], 4)
    comparisons = []
    if "online_p99_ms" in feast:
        name = f"feast {feast['version']} (sqlite online store)"
        comparisons = [comparison("online read, 1 entity x 3 features, p50", p50, feast["online_p50_ms"], "ms", name),
                       comparison("online read, 1 entity x 3 features, p99", p99, feast["online_p99_ms"], "ms", name)]
    return {
        "feast": feast, "comparisons": comparisons,
        "online_users": users, "online_p50_ms": p50,
        "online_p99_ms": round(lat[int(len(lat) * 0.99) - 1], 4), "online_calls": len(lat),
        "online_cpu_p50_ms": round(cpu[len(cpu) // 2], 4), "online_cpu_p99_ms": round(cpu[int(len(cpu) * 0.99) - 1], 4),
        "online_1000_entities_median_ms": round(statistics.median(many), 2),
        "online_1000_entities_cpu_median_ms": round(statistics.median(many_cpu), 2),
        "online_1000_entities_max_ms": round(max(many), 2),
        "push_rows_per_s_online": round(users / push_online_s), "push_rows_per_s_online_and_offline":
            round(users / push_both_s),
        "push_rows_per_cpu_s_online": round(users / push_online_cpu),
        "push_rows_per_cpu_s_online_and_offline": round(users / push_both_cpu),
        "floors_met": {"p99_below_feast_same_run": None if "online_p99_ms" not in feast else p99 < feast["online_p99_ms"],
                       "1000_entities_below_20ms": statistics.median(many) < 20,
                       "push_50k_rows_per_s": users / push_online_s >= 50_000},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--online-users", type=int, default=100_000)
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "forgeml-bench-features"))
    parser.add_argument("--skip-pit", action="store_true")
    args = parser.parse_args()
    Path(args.data).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="forgeml-features-"))
    cwd = os.getcwd()
    try:
        os.chdir(work)
        # wall-clock tails depend on what else runs; the load average and thread CPU times say how much
        result = {"load_avg_1m_at_start": os.getloadavg()[0]}
        if not args.skip_pit:
            result["pit"] = pit(args, work)
        result["online"] = online(args, work)
        result["comparisons"] = [*result.get("pit", {}).get("comparisons", []), *result["online"]["comparisons"]]
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)
    finish("features", result)


if __name__ == "__main__":
    main()
