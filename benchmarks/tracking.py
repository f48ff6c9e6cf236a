"""Experiment tracking: log_metric throughput, search over 10,000 runs, 8 concurrent writer processes.

Prints one JSON line. MLflow (SQLite backend store) runs in the same run, from an interpreter that
has it (this one, or FORGEML_BENCH_MLFLOW_PYTHON), like with like:
- forgeml's buffered log_metric (points written by a background thread) beside MLflow's asynchronous
  logging, both timed until every point is written;
- forgeml's log_metric followed by flush() on every point beside MLflow's synchronous log_metric, both
  returning only once the point is committed;
- forgeml's synchronous log_batch beside MLflow's log_batch, in chunks of 1,000.
Each side's durability (what survives kill -9, what survives power loss) is stated in the JSON.
Usage: python benchmarks/tracking.py [--points 100000] [--runs 10000] [--mlflow-points 2000]
"""

from __future__ import annotations

import argparse
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

from common import comparison, finish

QUERY = "params.lr between 1e-4 and 1e-3 and metrics.val_loss < 0.5 order by metrics.val_loss"


#: The [storage.metadata] table the workspaces use; None keeps the default SQLite store
#: (benchmarks/tracking_postgres.py sets a PostgreSQL one).
METADATA: str | None = None


def open_workspace(root: Path):
    """Create a workspace (on the METADATA store) with system metrics off and make it current."""
    from forgeml.testing.fixtures import with_metadata_section
    from forgeml.workspace import Workspace, default_config_text, set_current

    root.mkdir(parents=True, exist_ok=True)
    text = default_config_text().replace("system_metrics = true", "system_metrics = false")
    (root / "plugins.toml").write_text(with_metadata_section(text, METADATA) if METADATA else text)
    Workspace.init(root).close()
    ws = Workspace(root)
    set_current(ws)
    return ws


def bench_log_metric(root: Path, points: int) -> dict:
    """Time `points` log_metric calls in one run, then the flush that makes them durable."""
    import forgeml

    open_workspace(root)
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


def bench_search(root: Path, runs: int, repeats: int = 30) -> dict:
    """Create runs with 5 params and 3 metrics each (seeded), then time the issue's query."""
    from forgeml.tracking import search_runs
    from forgeml.tracking.records import FINISHED, Run
    from forgeml.tracking.store import tracking_store

    ws = open_workspace(root)
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


def bench_concurrent(root: Path, processes: int, points: int) -> dict:
    """Start `processes` writers on one run at once; count the points afterwards."""
    from forgeml.tracking import create_run
    from forgeml.tracking.store import tracking_store

    ws = open_workspace(root)
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


def bench_synchronous(root: Path, points: int) -> dict:
    """log_metric then flush() on every point: each returns once the point is committed, as MLflow's sync call."""
    import forgeml
    from forgeml.tracking.batch import log_batch

    open_workspace(root)
    with forgeml.start_run(name="sync") as run:
        started = time.perf_counter()
        for step in range(points):
            forgeml.log_metric("loss", 1.0 / (step + 1), step=step)
            forgeml.flush()
        sync_s = time.perf_counter() - started
        started = time.perf_counter()
        for chunk in range(0, points, 1000):
            steps = list(range(chunk, min(points, chunk + 1000)))
            log_batch(run.id, {"keys": ["batched"] * len(steps), "values": [1.0 / (s + 1) for s in steps],
                               "steps": steps})
        batch_s = time.perf_counter() - started
    return {"points": points, "log_metric_flush_each_ms_per_point": round(1000 * sync_s / points, 4),
            "log_batch_1000_ms_per_point": round(1000 * batch_s / points, 5)}


DURABILITY = ("SQLite in WAL mode with synchronous=NORMAL. Buffered log_metric: points still in the "
              "process's buffer (at most flush_interval_s, 0.5 s by default) are lost on kill -9; flushed "
              "points survive it. log_metric + flush() and log_batch: a point survives kill -9 once the call "
              "returned. Power loss: WAL with synchronous=NORMAL may roll back the last commits before a "
              "checkpoint (the database stays consistent), so the most recent points can be lost.")


def bench_mlflow(root: Path, points: int) -> dict:
    """MLflow's synchronous, asynchronous and log_batch logging, from an interpreter that has mlflow."""
    from common import peer_python, run_peer

    python, how = peer_python("mlflow")
    if python is None:
        return {"skipped": how}
    root.mkdir(parents=True, exist_ok=True)
    out = run_peer(python, Path(__file__).parent / "peers" / "mlflow_side.py", "tracking", str(root), str(points))
    return {**out, "ran_in": how}


def parse_args(description: str | None) -> argparse.Namespace:
    """The workload sizes both tracking benchmarks (SQLite and PostgreSQL) take."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--process-points", type=int, default=10_000)
    parser.add_argument("--mlflow-points", type=int, default=2_000)
    return parser.parse_args()


def main() -> None:
    """Run every workload and print one JSON line."""
    args = parse_args(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        result: dict = {"load_avg_1m_before": round(os.getloadavg()[0], 2)}
        result["log_metric"] = bench_log_metric(tmp_path / "throughput", args.points)
        result["search"] = bench_search(tmp_path / "search", args.runs)
        result["concurrent"] = bench_concurrent(tmp_path / "concurrent", args.processes, args.process_points)
        result["synchronous"] = bench_synchronous(tmp_path / "sync", args.mlflow_points)
        result["durability"] = DURABILITY
        peer = bench_mlflow(tmp_path / "mlflow", args.mlflow_points)
        result["mlflow"] = peer
        result["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
        ours, sync = result["log_metric"], result["synchronous"]
        buffered_ms = 1000 / ours["points_per_s"]
        if "skipped" not in peer:
            name = f"mlflow {peer['version']}"
            result["comparisons"] = [
                comparison("log_metric, buffered vs async, to written", buffered_ms,
                           peer["async_log_metric"]["ms_per_point_to_flushed"], "ms/point", name + " async"),
                comparison("log_metric, committed per call", sync["log_metric_flush_each_ms_per_point"],
                           peer["sync_log_metric"]["ms_per_point"], "ms/point", name + " sync"),
                comparison("log_batch, chunks of 1,000", sync["log_batch_1000_ms_per_point"],
                           peer["log_batch_1000"]["ms_per_point"], "ms/point", name + " log_batch"),
            ]
        result["floors"] = {
            "log_metric_under_5us_with_flush": ours["us_per_point_with_flush"] <= 5,
            "search_under_50ms": result["search"]["median_ms"] < 50,
            "concurrent_all_present": result["concurrent"]["all_present"],
            "log_metric_100x_mlflow_sync": None if "skipped" in peer else
            peer["sync_log_metric"]["ms_per_point"] / buffered_ms >= 100,
        }
    finish("tracking", result)


if __name__ == "__main__":
    main()
