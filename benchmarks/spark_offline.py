"""Point-in-time join on the Spark offline store vs the DuckDB store, on the same Parquet files and machine.

Feature rows are written once (both stores read the same date-partitioned layout); each store then joins the
same entity rows, with a TTL, and the values are compared. Spark runs as ``local[N]`` inside this process
(``--master`` takes a cluster URL instead); its session start-up is timed apart. On one machine Spark is
slower than DuckDB: the figure is the cost of the switch, not a race. Prints one JSON line.

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

        duck_s, expected = join(duck)
        duck.close()
        spark = SparkOfflineStore(tmp, master=args.master, conf={"spark.sql.shuffle.partitions": "8",
                                                                "spark.driver.memory": "4g"})
        began = time.perf_counter()
        spark.spark.range(1).count()
        session_s = time.perf_counter() - began
        spark_s, got = join(spark)
        spark.spark.stop()
    same = got.column("bench__v").to_pandas().equals(expected.column("bench__v").to_pandas())
    finish("spark_offline", {
        "entities": args.entities, "feature_rows": args.rows, "users": args.users, "write_s": round(write_s, 3),
        "duckdb": {"point_in_time_join_s": round(duck_s, 3), "nulls": expected.column("bench__v").null_count},
        "spark": {"version": pyspark.__version__, "master": args.master, "session_start_s": round(session_s, 3),
                  "point_in_time_join_s": round(spark_s, 3), "nulls": got.column("bench__v").null_count},
        "spark_over_duckdb": round(spark_s / max(duck_s, 1e-9), 2), "values_identical": bool(same)})


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
