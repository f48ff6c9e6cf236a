"""Point-in-time join on the Spark offline store vs the DuckDB store, on the same Parquet files and machine.

Feature rows are written once (both stores read the same date-partitioned layout); each store then joins the
same entity rows, with a TTL, and the values are compared. Spark runs as ``local[N]`` inside this process
(``--master`` takes a cluster URL instead); its session start-up is timed apart. On one machine Spark is
slower than DuckDB: the figure is the cost of the switch, not a race. Window aggregations (count, sum, mean,
last over 1h and 1d windows) of the same rows are timed on both stores too and compared (floats to 1e-9).
Entity rows above the Spark store's staging size reach Spark as Parquet under the root. Prints one JSON line.

    python benchmarks/spark_offline.py --entities 1000000 --rows 10000000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from common import finish

BASE_US = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
DAY_US = 86_400_000_000


def rows(n: int, users: int, days: int, seed: int, values: bool) -> pa.Table:
    """Deterministic rows at random microseconds over `days` days (two rows of one key share an instant ~never)."""
    rng = np.random.default_rng(seed)
    ts = BASE_US + rng.integers(0, days * DAY_US, n)
    table = {"user_id": rng.integers(0, users, n), "event_timestamp": pa.array(ts, pa.timestamp("us", "UTC"))}
    if values:
        table["v"] = rng.random(n)
    return pa.table(table)


def main() -> None:
    """Write the feature rows, join on both stores, compare, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    try:
        import pyspark
    except ImportError:
        finish("spark_offline", {"skipped": "pyspark is not installed (pip install 'forgeml[spark]')"})
        return
    from forgeml.contracts import FeatureRequest
    from forgeml.plugins.spark.store import SparkOfflineStore
    from forgeml.storage.offline import DuckDBOfflineStore

    with tempfile.TemporaryDirectory() as tmp:
        duck = DuckDBOfflineStore(tmp)
        started = time.perf_counter()
        duck.write("bench", rows(args.rows, args.users, args.days, 7, True), "event_timestamp")
        write_s = time.perf_counter() - started
        entities = rows(args.entities, args.users, args.days, 8, False)

        def join(store: Any) -> tuple[float, pa.Table]:
            request = FeatureRequest("bench", store.table_relation("bench"), ("user_id",), ("v",), ("bench__v",),
                                     "event_timestamp", ttl_s=7 * 86400.0)
            began = time.perf_counter()
            out = store.point_in_time_join(entities, [request], "event_timestamp")
            return time.perf_counter() - began, out

        def windows(store: Any) -> tuple[float, pa.Table]:
            from forgeml.contracts import WindowAggregate, WindowRequest
            from forgeml.features.aggregations import hop_for
            from forgeml.features.window_offline import window_aggregates

            aggs = tuple(WindowAggregate(f"{fn}_{label}", fn, None if fn == "count" else "v", s * 1_000_000,
                                         hop_for(s) * 1_000_000)
                         for fn in ("count", "sum", "mean", "last") for label, s in (("1h", 3600), ("1d", 86400)))
            request = WindowRequest(store.table_relation("bench"), ("user_id",), "event_timestamp",
                                    (("v", "float64"),), aggs)
            began = time.perf_counter()
            out = window_aggregates(store, entities.select(["user_id"]), micros, request)
            return time.perf_counter() - began, out

        micros = entities.column("event_timestamp").cast(pa.int64())
        duck_s, expected = join(duck)
        duck_w_s, expected_w = windows(duck)
        duck.close()
        spark = SparkOfflineStore(tmp, master=args.master, conf={"spark.sql.shuffle.partitions": "8",
                                                                "spark.driver.memory": "4g"})
        began = time.perf_counter()
        spark.spark.range(1).count()
        session_s = time.perf_counter() - began
        spark_s, got = join(spark)
        spark_w_s, got_w = windows(spark)
        staged = entities.num_rows * 24 > spark.stage_bytes  # keys, time and row number: 8 bytes each
        spark.spark.stop()
    same = got.column("bench__v").to_pandas().equals(expected.column("bench__v").to_pandas())
    same_w = all(np.allclose(got_w.column(c).to_numpy(zero_copy_only=False).astype(float),
                             expected_w.column(c).to_numpy(zero_copy_only=False).astype(float),
                             rtol=1e-9, atol=1e-9, equal_nan=True) for c in expected_w.column_names)
    finish("spark_offline", {
        "entities": args.entities, "feature_rows": args.rows, "users": args.users, "write_s": round(write_s, 3),
        "duckdb": {"point_in_time_join_s": round(duck_s, 3), "nulls": expected.column("bench__v").null_count},
        "spark": {"version": pyspark.__version__, "master": args.master, "session_start_s": round(session_s, 3),
                  "point_in_time_join_s": round(spark_s, 3), "nulls": got.column("bench__v").null_count},
        "spark_over_duckdb": round(spark_s / max(duck_s, 1e-9), 2), "values_identical": bool(same),
        "windows": {"features": expected_w.num_columns, "duckdb_s": round(duck_w_s, 3), "spark_s": round(spark_w_s, 3),
                    "spark_over_duckdb": round(spark_w_s / max(duck_w_s, 1e-9), 2), "values_equal": bool(same_w)},
        "entity_rows_staged_as_parquet": staged})


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
