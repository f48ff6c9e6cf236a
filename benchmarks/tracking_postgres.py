"""Experiment tracking on the postgres metadata store: log_metric, search over 10,000 runs, 8 writers.

The same workloads as benchmarks/tracking.py, on a PostgreSQL server named by FORGEML_PG_URL
(`tests/services/postgres.sh start` runs one on 127.0.0.1 and writes it to
$TMPDIR/forgeml-postgres/env), each in a fresh schema dropped afterwards. MLflow's SQLAlchemy store
runs on the same server beside it when an interpreter has mlflow (this one, or
FORGEML_BENCH_MLFLOW_PYTHON with psycopg installed), else it says skipped. Prints one JSON line.
Usage: python benchmarks/tracking_postgres.py [--points 100000] [--runs 10000] [--mlflow-points 2000]
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import tracking
from common import comparison, finish, peer_python, run_peer

SCHEMAS: list[str] = []


def use_schema() -> str:
    """Point the benchmark's workspaces at a fresh schema of the server."""
    from forgeml.testing.fixtures import metadata_section

    SCHEMAS.append(f"bench_{uuid.uuid4().hex[:12]}")
    tracking.METADATA = metadata_section("postgres", SCHEMAS[-1])
    return SCHEMAS[-1]


def bench_mlflow(points: int) -> dict:
    """MLflow's logging against its SQLAlchemy store in a schema of the same PostgreSQL server."""
    python, how = peer_python("mlflow")
    if python is None:
        return {"skipped": how}
    schema = use_schema()
    from forgeml.workspace import current

    current().metadata.execute(f'CREATE SCHEMA "{schema}"')
    url = os.environ["FORGEML_PG_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    uri = f"{url}?options=-csearch_path%3D{schema}"
    out = run_peer(python, Path(__file__).parent / "peers" / "mlflow_side.py", "tracking", uri, str(points))
    return {**out, "ran_in": how}


def main() -> None:
    """Run every workload on PostgreSQL and print one JSON line."""
    args = tracking.parse_args(__doc__)
    if not os.environ.get("FORGEML_PG_URL"):
        finish("tracking_postgres", {"skipped": "set FORGEML_PG_URL (tests/services/postgres.sh start writes it)"})
        return
    result: dict = {"load_avg_1m_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        try:
            use_schema()
            result["log_metric"] = tracking.bench_log_metric(tmp_path / "throughput", args.points)
            use_schema()
            result["search"] = tracking.bench_search(tmp_path / "search", args.runs)
            use_schema()
            result["concurrent"] = tracking.bench_concurrent(tmp_path / "concurrent", args.processes,
                                                             args.process_points)
            use_schema()
            result["synchronous"] = tracking.bench_synchronous(tmp_path / "sync", args.mlflow_points)
            peer = result["mlflow"] = bench_mlflow(args.mlflow_points)
        finally:
            from forgeml.workspace import current

            for schema in SCHEMAS:
                current().metadata.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    result["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    ours, sync = result["log_metric"], result["synchronous"]
    if "skipped" not in peer:
        name = f"mlflow {peer['version']} on the same PostgreSQL"
        result["comparisons"] = [
            comparison("log_metric, buffered vs async, to written", 1000 / ours["points_per_s"],
                       peer["async_log_metric"]["ms_per_point_to_flushed"], "ms/point", name + " async"),
            comparison("log_metric, committed per call", sync["log_metric_flush_each_ms_per_point"],
                       peer["sync_log_metric"]["ms_per_point"], "ms/point", name + " sync"),
            comparison("log_batch, chunks of 1,000", sync["log_batch_1000_ms_per_point"],
                       peer["log_batch_1000"]["ms_per_point"], "ms/point", name + " log_batch"),
        ]
    result["floors"] = {
        "log_metric_under_20us_with_flush": ours["us_per_point_with_flush"] <= 20,
        "search_10k_runs_under_50ms": result["search"]["median_ms"] < 50,
        "concurrent_all_present": result["concurrent"]["all_present"],
    }
    finish("tracking_postgres", result)


if __name__ == "__main__":
    main()
