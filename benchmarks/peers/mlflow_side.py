"""MLflow's side of the tracking and registry benchmarks, run by an interpreter that has mlflow.

Usage (called by benchmarks/tracking.py and benchmarks/registry.py, one JSON line out):
  python mlflow_side.py tracking FOLDER POINTS      (FOLDER may be a database URL such as postgresql+psycopg://...)
  python mlflow_side.py pyfunc MODEL.joblib ROW.parquet REPEAT
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from pathlib import Path


def tracking(folder: Path | str, points: int) -> dict:
    """log_metric one call per point (synchronous, then asynchronous) and log_batch in chunks of 1,000."""
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    # a URL names MLflow's SQLAlchemy store on that database (PostgreSQL beside forgeml's postgres store)
    mlflow.set_tracking_uri(folder if isinstance(folder, str) else f"sqlite:///{folder / 'mlflow.db'}")
    out: dict = {"version": mlflow.__version__, "points": points}
    with mlflow.start_run():
        mlflow.log_metric("warmup", 0.0)
        started = time.perf_counter()
        for step in range(points):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        elapsed = time.perf_counter() - started
    out["sync_log_metric"] = {"ms_per_point": round(1000 * elapsed / points, 4),
                              "points_per_s": round(points / elapsed, 1)}
    with mlflow.start_run():
        mlflow.log_metric("warmup", 0.0)
        started = time.perf_counter()
        for step in range(points):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step, synchronous=False)
        called = time.perf_counter()
        mlflow.flush_async_logging()
        elapsed = time.perf_counter() - started
    out["async_log_metric"] = {"call_us": round(1e6 * (called - started) / points, 3),
                               "ms_per_point_to_flushed": round(1000 * elapsed / points, 4),
                               "points_per_s": round(points / elapsed, 1)}
    client = MlflowClient()
    with mlflow.start_run() as run:
        now = int(time.time() * 1000)
        started = time.perf_counter()
        for chunk in range(0, points, 1000):
            client.log_batch(run.info.run_id, metrics=[Metric("loss", 1.0 / (s + 1), now, s)
                                                       for s in range(chunk, min(points, chunk + 1000))])
        elapsed = time.perf_counter() - started
    out["log_batch_1000"] = {"ms_per_point": round(1000 * elapsed / points, 5),
                             "points_per_s": round(points / elapsed, 1)}
    database = "PostgreSQL" if isinstance(folder, str) and folder.startswith("postgresql") else "SQLite"
    out["durability"] = (f"sync log_metric: each call is a committed {database} transaction before it returns, so "
                         "a point survives kill -9 once the call returned; survival of power loss follows "
                         f"{database}'s own durability settings. async: points queued in the process are lost on "
                         "kill -9 until flushed. log_batch: one transaction per batch")
    return out


def pyfunc(model_path: Path, row_path: Path, repeat: int) -> dict:
    """Single-row predict through mlflow.pyfunc on a model saved from the same fitted estimator."""
    import tempfile

    import joblib
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    import pandas as pd

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    model = joblib.load(model_path)
    row = pd.read_parquet(row_path)
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.sklearn.save_model(model, str(Path(tmp) / "m"))
        loaded = mlflow.pyfunc.load_model(str(Path(tmp) / "m"))
        for _ in range(50):
            loaded.predict(row)
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            loaded.predict(row)
            samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"version": mlflow.__version__, "p50_ms": round(statistics.median(samples), 4),
            "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 4)}


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "tracking":
        where = sys.argv[2]
        print(json.dumps(tracking(where if "://" in where else Path(where), int(sys.argv[3]))))
    else:
        print(json.dumps(pyfunc(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))))
