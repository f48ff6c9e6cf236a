"""DuckDB reading Parquet on an S3 endpoint through its httpfs extension from PyPI (the alternative to fsspec).

Run by benchmarks/s3_offline.py with an interpreter that has ``duckdb`` and ``duckdb-extension-httpfs`` of
the same version (the extension pins DuckDB's version), named by FORGEML_BENCH_HTTPFS_PYTHON:

    python duckdb_httpfs.py ENDPOINT GLOB ENTITY_PARQUET REPEATS
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path


def main(endpoint: str, glob: str, entities: str, repeats: int) -> dict[str, object]:
    """Time the scan and the ASOF join the forgeml side runs, through httpfs."""
    import duckdb
    import duckdb_extension_httpfs

    ext = next(Path(duckdb_extension_httpfs.__file__).parent.rglob("httpfs.duckdb_extension"))
    con = duckdb.connect()
    con.execute(f"LOAD '{ext}'")
    con.execute("SET TimeZone = 'UTC'")
    host = endpoint.split("://", 1)[1]
    for key, value in {"s3_endpoint": host, "s3_url_style": "path", "s3_use_ssl": "false",
                       "s3_region": "us-east-1", "s3_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                       "s3_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing")}.items():
        con.execute(f"SET {key} = '{value}'")
    relation = f"read_parquet('{glob}', hive_partitioning = true)"
    scan = f"SELECT count(*), sum(v) FROM {relation}"
    join = (f"SELECT count(f.v), sum(f.v) FROM read_parquet('{entities}') e ASOF LEFT JOIN "
            f"(SELECT user_id, event_timestamp, v FROM {relation}) f "
            f"ON e.user_id = f.user_id AND e.event_timestamp >= f.event_timestamp")
    out: dict[str, object] = {"duckdb": duckdb.__version__}
    for name, sql in (("scan", scan), ("asof_join", join)):
        times, result = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = con.execute(sql).fetchone()
            times.append(time.perf_counter() - t0)
        out[name] = {"median_s": round(statistics.median(times), 3), "result": [float(x or 0) for x in result or ()]}
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))))
