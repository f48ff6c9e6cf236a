"""Experiment tracking: log_metric throughput, search over 10,000 runs, 8 concurrent writer processes.

Runs every workload on the SQLite metadata store and, when FORGEML_PG_URL names a PostgreSQL server
(tests/services/postgres.sh start writes one), on the postgres plugin in a fresh schema. Prints one
JSON line. MLflow runs beside each backend (its SQLite store, and its SQLAlchemy store on the same
PostgreSQL server) when this Python has mlflow or FORGEML_BENCH_MLFLOW_PYTHON names one that does
(mlflow pins pandas/pyarrow versions forgeml cannot share: give it a venv of its own).
Usage: python benchmarks/tracking.py [--points 100000] [--runs 10000] [--mlflow-points 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

QUERY = "params.lr between 1e-4 and 1e-3 and metrics.val_loss < 0.5 order by metrics.val_loss"


SCHEMAS: list[str] = []


def open_workspace(root: Path, backend: str = "sqlite"):
    """Create a workspace on a metadata backend with system metrics off and make it current."""
    from forgeml.testing.fixtures import metadata_section, with_metadata_section
    from forgeml.workspace import Workspace, default_config_text, set_current

    root.mkdir(parents=True, exist_ok=True)
    text = default_config_text().replace("system_metrics = true", "system_metrics = false")
    if backend == "postgres":
        SCHEMAS.append(f"bench_{uuid.uuid4().hex[:12]}")
        text = with_metadata_section(text, metadata_section("postgres", SCHEMAS[-1]))
    (root / "plugins.toml").write_text(text)
    Workspace.init(root).close()
    ws = Workspace(root)
    set_current(ws)
    return ws


def bench_log_metric(root: Path, points: int, backend: str = "sqlite") -> dict:
    """Time `points` log_metric calls in one run, then the flush that makes them durable."""
    import forgeml

    open_workspace(root, backend)
    with forgeml.start_run(name="throughput") as run:
        log_metric = forgeml.log_metric
        started = time.perf_counter()
        for step in range(points):
            log_metric("loss", 1.0 / (step + 1), step=step)
        logged = time.perf_counter()
        forgeml.flush()
        flushed = time.perf_counter()
    from forgeml.tracking.store import tracking_store

    stored = tracking_store(run._store.workspace).count_points(run.id)
    return {
        "points": points,
        "call_us": round((logged - started) / points * 1e6, 3),
        "flush_s": round(flushed - logged, 3),
        "points_per_s": round(points / (flushed - started)),
        "us_per_point_with_flush": round((flushed - started) / points * 1e6, 3),
        "all_stored": stored == points,
    }


def bench_search(root: Path, runs: int, repeats: int = 30, backend: str = "sqlite") -> dict:
    """Create runs with 5 params and 3 metrics each (seeded), then time the issue's query."""
    from forgeml.tracking import search_runs
    from forgeml.tracking.records import FINISHED, Run
    from forgeml.tracking.store import tracking_store

    ws = open_workspace(root, backend)
    store = tracking_store(ws)
    rng = random.Random(7)
    points = []
    created = time.perf_counter()
    with store.db.transaction():
        for i in range(runs):
            run_id = uuid.UUID(int=rng.getrandbits(128)).hex
            params = {"lr": 10 ** rng.uniform(-5, -1), "batch_size": rng.choice([16, 32, 64, 128]),
                      "dropout": round(rng.uniform(0, 0.5), 3), "optimizer": rng.choice(["adam", "sgd", "rmsprop"]),
                      "layers": rng.randint(2, 12)}
            seq = store.insert_run(Run(id=run_id, name=f"run-{i}", experiment=f"exp-{i % 10}", status=FINISHED,
                                       start_time=1.7e9 + i, end_time=1.7e9 + i + 60, params=params))
            now = 1.7e9 + i + 60
            points += [(seq, "val_loss", 10, now, rng.uniform(0.1, 1.5)),
                       (seq, "train_loss", 10, now, rng.uniform(0.05, 1.2)),
                       (seq, "accuracy", 10, now, rng.uniform(0.5, 0.99))]
        store.write_points(points)
    created = time.perf_counter() - created
    frame = search_runs(QUERY)  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        frame = search_runs(QUERY)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    values = frame["metrics.val_loss"].tolist()
    return {
        "runs": runs,
        "query": QUERY,
        "matched": len(frame),
        "sorted": values == sorted(values),
        "median_ms": round(statistics.median(times) * 1000, 2),
        "min_ms": round(min(times) * 1000, 2),
        "median_cpu_ms": round(statistics.median(cpu) * 1000, 2),
        "setup_s": round(created, 2),
    }


def bench_concurrent(root: Path, processes: int, points: int, backend: str = "sqlite") -> dict:
    """Start `processes` writers on one run at once; count the points afterwards."""
    from forgeml.tracking import create_run
    from forgeml.tracking.store import tracking_store

    ws = open_workspace(root, backend)
    run = create_run(name="concurrent")
    code = textwrap.dedent(f"""
        import os, forgeml
        key = "loss/" + os.environ["WRITER"]
        with forgeml.start_run(run_id="{run.id}"):
            for step in range({points}):
                forgeml.log_metric(key, 1.0 / (step + 1), step=step)
    """)
    env = {**os.environ, "FORGEML_HOME": str(root), "RANK": "1"}
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code], env={**env, "WRITER": str(i)}, cwd=root)
             for i in range(processes)]
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - started
    stored = tracking_store(ws).count_points(run.id)
    return {"processes": processes, "points_each": points, "stored": stored,
            "all_present": stored == processes * points and codes == [0] * processes,
            "wall_s": round(elapsed, 2)}


MLFLOW_LOG = """
import json, logging, sys, time
import mlflow
logging.getLogger("mlflow").setLevel(logging.ERROR)
uri, points = sys.argv[1], int(sys.argv[2])
mlflow.set_tracking_uri(uri)
with mlflow.start_run():
    mlflow.log_metric("warmup", 0.0)
    started = time.perf_counter()
    for step in range(points):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    elapsed = time.perf_counter() - started
print(json.dumps({"version": mlflow.__version__, "points": points, "points_per_s": round(points / elapsed, 1),
                  "ms_per_point": round(elapsed / points * 1000, 3)}))
"""


def mlflow_python() -> str | None:
    """Return a Python that has mlflow: this one, or FORGEML_BENCH_MLFLOW_PYTHON (e.g. a separate venv)."""
    try:
        import mlflow  # noqa: F401

        return sys.executable
    except ImportError:
        other = os.environ.get("FORGEML_BENCH_MLFLOW_PYTHON")
        return other if other and Path(other).exists() else None


def bench_mlflow(tracking_uri: str, points: int) -> dict | str:
    """Time mlflow.log_metric, one call per point, against an MLflow tracking URI (its SQLAlchemy store)."""
    python = mlflow_python()
    if python is None:
        return "skipped: mlflow is not installed (or set FORGEML_BENCH_MLFLOW_PYTHON to a Python that has it)"
    done = subprocess.run([python, "-c", MLFLOW_LOG, tracking_uri, str(points)], capture_output=True, text=True,
                          timeout=1800)
    if done.returncode:
        return f"skipped: mlflow failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_backend(tmp_path: Path, backend: str, args: argparse.Namespace) -> dict:
    """Run the three workloads on one metadata backend, with MLflow on the same database beside them."""
    result: dict = {"log_metric": bench_log_metric(tmp_path / f"throughput-{backend}", args.points, backend)}
    result["search"] = bench_search(tmp_path / f"search-{backend}", args.runs, backend=backend)
    result["concurrent"] = bench_concurrent(tmp_path / f"concurrent-{backend}", args.processes,
                                            args.process_points, backend)
    if backend == "postgres":
        schema = f"mlflow_{uuid.uuid4().hex[:10]}"
        SCHEMAS.append(schema)
        url = os.environ["FORGEML_PG_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
        uri = f"{url}?options=-csearch_path%3D{schema}"
        _create_schema(schema)
    else:
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    peer = bench_mlflow(uri, args.mlflow_points)
    result["mlflow"] = peer
    if isinstance(peer, dict):
        result["speedup_vs_mlflow"] = round(result["log_metric"]["points_per_s"] / peer["points_per_s"], 1)
    return result


def _create_schema(schema: str) -> None:
    from forgeml.workspace import current

    current().metadata.execute(f'CREATE SCHEMA "{schema}"')


def _drop_schemas() -> None:
    from forgeml.workspace import current

    store = current().metadata
    for schema in SCHEMAS:
        store.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    """Run every workload and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--process-points", type=int, default=10_000)
    parser.add_argument("--mlflow-points", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        result: dict = {"benchmark": "tracking", "load_avg_1m_before": round(os.getloadavg()[0], 2),
                        "cpus": os.cpu_count()}
        result["sqlite"] = sqlite = bench_backend(tmp_path, "sqlite", args)
        floors = {
            "sqlite_log_metric_under_5us": sqlite["log_metric"]["us_per_point_with_flush"] <= 5,
            "sqlite_search_under_50ms": sqlite["search"]["median_ms"] < 50,
            "sqlite_concurrent_all_present": sqlite["concurrent"]["all_present"],
            "log_metric_100x_mlflow": sqlite.get("speedup_vs_mlflow", 0) >= 100 if "speedup_vs_mlflow" in sqlite
            else None,
        }
        if os.environ.get("FORGEML_PG_URL"):
            try:
                result["postgres"] = pg = bench_backend(tmp_path, "postgres", args)
                floors.update({
                    "postgres_log_metric_under_20us": pg["log_metric"]["us_per_point_with_flush"] <= 20,
                    "postgres_search_under_50ms": pg["search"]["median_ms"] < 50,
                    "postgres_concurrent_all_present": pg["concurrent"]["all_present"],
                })
            finally:
                _drop_schemas()
        else:
            result["postgres"] = "skipped: set FORGEML_PG_URL (tests/services/postgres.sh start writes it)"
        result["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
        result["floors"] = floors
    print(json.dumps(result))


if __name__ == "__main__":
    main()
