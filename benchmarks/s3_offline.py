"""Reading the offline store's Parquet on an S3 endpoint: the s3 plugin (pyarrow datasets through pyarrow's own
S3 client, handed to DuckDB) vs DuckDB reading through s3fs as an fsspec filesystem (the plugin's earlier route)
vs DuckDB's httpfs extension from PyPI.

Needs an S3-compatible endpoint: FORGEML_S3_ENDPOINT (``tests/services/s3.sh start`` runs moto's server
mode on loopback, an in-memory mock: figures include its Python request handling, not a real S3's). The
httpfs side runs in the interpreter FORGEML_BENCH_HTTPFS_PYTHON names (``duckdb`` and
``duckdb-extension-httpfs`` of one version), or is reported skipped. Prints one JSON line.

    python benchmarks/s3_offline.py --rows 1000000 --entities 100000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from common import finish, run_peer

BASE_US = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
DAY_US = 86_400_000_000


def make_rows(rows: int, users: int, days: int, seed: int = 7) -> pa.Table:
    """Deterministic feature rows spread over `days` days."""
    rng = np.random.default_rng(seed)
    ts = BASE_US + rng.integers(0, days * DAY_US, rows)
    return pa.table({"user_id": rng.integers(0, users, rows), "event_timestamp": pa.array(ts, pa.timestamp("us", "UTC")),
                     "v": rng.random(rows)})


def make_entities(n: int, users: int, days: int, seed: int = 8) -> pa.Table:
    """Deterministic entity rows over the same span."""
    rng = np.random.default_rng(seed)
    ts = BASE_US + rng.integers(0, days * DAY_US, n)
    return pa.table({"user_id": rng.integers(0, users, n), "event_timestamp": pa.array(ts, pa.timestamp("us", "UTC"))})


def timed(fn: Any, repeats: int) -> tuple[float, Any]:
    """Median wall seconds of `repeats` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 3), result


def main() -> None:
    """Write the rows once through the s3 plugin, then time each way of reading them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    endpoint = os.environ.get("FORGEML_S3_ENDPOINT")
    if not endpoint:
        finish("s3_offline", {"skipped": "FORGEML_S3_ENDPOINT is not set (tests/services/s3.sh start; source its env)"})
        return
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    import s3fs

    from forgeml.contracts import FeatureRequest
    from forgeml.plugins.s3 import S3OfflineSettings, _offline

    bucket = f"forgeml-bench-{uuid.uuid4().hex[:8]}"
    s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}).mkdir(bucket)
    root = f"s3://{bucket}/offline"

    class Here:
        root = Path.cwd()

    store = _offline(S3OfflineSettings(endpoint_url=endpoint, root=root), Here())
    data, entities = make_rows(args.rows, args.users, args.days), make_entities(args.entities, args.users, args.days)
    t0 = time.perf_counter()
    store.write("bench", data, "event_timestamp")
    write_s = round(time.perf_counter() - t0, 3)
    glob = f"{root}/bench/*/*.parquet"
    result: dict[str, Any] = {"rows": args.rows, "entities": args.entities, "endpoint": "moto server mode (mock)",
                              "files": len(store.fs.glob(glob)), "write_s": write_s}

    from forgeml.storage.offline import DuckDBOfflineStore

    def measure(reader: Any) -> dict[str, Any]:
        """Time a scan, an ASOF join in SQL and the store's point-in-time join on one store object."""
        relation = reader.table_relation("bench")
        scan_sql = f"SELECT count(*), sum(v) FROM {relation}"
        join_sql = (f"SELECT count(f.v), sum(f.v) FROM __e e ASOF LEFT JOIN (SELECT user_id, event_timestamp, v "
                    f"FROM {relation}) f ON e.user_id = f.user_id AND e.event_timestamp >= f.event_timestamp")
        request = FeatureRequest("bench", relation, ("user_id",), ("v",), ("bench__v",), "event_timestamp")
        scan_s, scan = timed(lambda: reader.query(scan_sql).to_pylist(), args.repeats)
        join_s, join = timed(lambda: reader.query(join_sql, {"__e": entities}).to_pylist(), args.repeats)
        pit_s, pit = timed(lambda: reader.point_in_time_join(entities, [request], "event_timestamp"), args.repeats)
        return {"duckdb": __import__("duckdb").__version__,
                "scan": {"median_s": scan_s, "result": list(scan[0].values())},
                "asof_join": {"median_s": join_s, "result": list(join[0].values())},
                "point_in_time_join_s": pit_s, "pit_nulls": pit.column("bench__v").null_count}

    # before: DuckDB reads the Parquet through s3fs (the fsspec route; the plugin still writes through it)
    fsspec_reader = DuckDBOfflineStore(root, fs=store.fs)
    result["fsspec_s3fs"] = measure(fsspec_reader)
    fsspec_reader.close()
    # after: the s3 plugin reads its tables as pyarrow datasets through pyarrow's own S3 client
    result["s3_plugin_pyarrow"] = measure(store)
    result["speedup"] = {part: round(result["fsspec_s3fs"][part]["median_s"] /
                                     max(result["s3_plugin_pyarrow"][part]["median_s"], 1e-9), 2)
                         for part in ("scan", "asof_join")}

    python = os.environ.get("FORGEML_BENCH_HTTPFS_PYTHON")
    if not python:
        result["httpfs"] = {"skipped": "FORGEML_BENCH_HTTPFS_PYTHON names no interpreter with duckdb-extension-httpfs"}
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "entities.parquet"
            pq.write_table(entities, path)
            result["httpfs"] = run_peer(python, Path(__file__).parent / "peers" / "duckdb_httpfs.py", endpoint, glob,
                                        str(path), str(args.repeats))
    store.close()
    finish("s3_offline", result)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
