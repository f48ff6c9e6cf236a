"""Training sets, training jobs and model versions of the quickstart's fraud model.

Shared by the quickstart itself and by the retraining pipeline it writes into the workspace, so a
retrained version is built exactly like the first one. Functions take the workspace explicitly or
use the current one (a pipeline step runs in the workspace it was started in).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from forgeml.errors import JobError
from forgeml.quickstart.features import ENTITY_KEYS, FEATURE_REFS, MODEL_INPUTS, TARGET, TRANSACTIONS

MODEL = "fraud"
TRAINING = "fraud_training"
HOLDOUT = "fraud_holdout"
EXPERIMENT = "fraud"
SPLIT = {"train": 0.7, "validation": 0.15, "test": 0.15}  # the same split train.py makes
COLUMNS = ["transaction_id", "user_id", "event_timestamp", "category", "amount", TARGET]


def _ws(workspace: Any) -> Any:
    if workspace is not None:
        return workspace
    from forgeml.workspace import current

    return current()


@dataclass
class TrainingSet:
    """A point-in-time training set and what building it cost."""

    table: Any
    entity_rows: int
    dropped: int  # rows whose user had no spending in the 30 days before (nothing to compare with)
    join_s: float


def read_transactions(workspace: Any = None) -> Any:
    """Read every transaction the workspace holds under data/transactions as an Arrow table."""
    ws = _ws(workspace)
    path = str(ws.root / TRANSACTIONS / "**" / "*.parquet").replace("'", "''")
    return ws.offline_store.query(f"SELECT * EXCLUDE (\"date\") FROM read_parquet('{path}', hive_partitioning = true) "
                                  "ORDER BY event_timestamp")


def entity_rows(transactions: Any, start: datetime, end: datetime, labels_by: datetime) -> Any:
    """The transactions in [start, end) whose fraud label had arrived by labels_by, as entity rows.

    Each row asks for the features one microsecond before its transaction, so the user's stats do
    not yet include it: exactly what the model server sees when the transaction comes in.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    ts = transactions["event_timestamp"]
    keep = pc.and_(pc.and_(pc.greater_equal(ts, pa.scalar(start, ts.type)), pc.less(ts, pa.scalar(end, ts.type))),
                   pc.less_equal(transactions["label_timestamp"], pa.scalar(labels_by, ts.type)))
    rows = transactions.filter(keep).select(COLUMNS)
    before = pc.cast(pc.subtract(pc.cast(rows["event_timestamp"], pa.int64()), 1), ts.type)
    return rows.set_column(rows.column_names.index("event_timestamp"), "event_timestamp", before)


def build_training_set(rows: Any, workspace: Any = None) -> TrainingSet:
    """Join the model's features onto entity rows as of each row's time; drop rows without 30-day history."""
    import pyarrow.compute as pc

    from forgeml.features import FeatureStore

    ws = _ws(workspace)
    started = time.perf_counter()
    joined = FeatureStore(ws).get_historical_features(rows, FEATURE_REFS)
    join_s = time.perf_counter() - started
    complete = pc.is_valid(joined["mean_amount_30d"])
    table = joined.filter(complete)
    return TrainingSet(table, rows.num_rows, rows.num_rows - table.num_rows, join_s)


def register_and_validate(table: Any, workspace: Any = None, name: str = TRAINING) -> tuple[Any, Any]:
    """Register a training set as the next version of its dataset and validate it with expectations.toml."""
    from forgeml.datasets import register_dataset, validate

    ws = _ws(workspace)
    dv = register_dataset(name, table, description="Point-in-time fraud training set (quickstart).", workspace=ws)
    report = validate(dv, ws.root / "expectations.toml", workspace=ws)
    return dv, report


def register_holdout(dataset_ref: str, workspace: Any = None) -> Any:
    """Register the test part of a training set's time split (the rows train.py never sees) as fraud_holdout."""
    from forgeml.datasets import register_dataset, split

    ws = _ws(workspace)
    test = split(dataset_ref, SPLIT, by="time", column="event_timestamp", workspace=ws)["test"]
    return register_dataset(HOLDOUT, test, description=f"Held-out latest rows of {dataset_ref}.", workspace=ws)


def gpus_per_job(workspace: Any = None) -> int:
    """One GPU per training job when the machine has any, else none (CPU)."""
    return 1 if _ws(workspace).gpu_inventory.devices() else 0


def input_example(table: Any) -> Any:
    """A few rows of model inputs, from which the registry records the model's signature."""
    return table.select(MODEL_INPUTS).slice(0, 5).to_pandas()


def register_options(dataset_ref: str, example: Any) -> dict[str, Any]:
    """What a fraud model version records besides its file: signature, data, features and entity keys."""
    return {"input_example": example, "datasets": [dataset_ref], "feature_views": list(FEATURE_REFS),
            "entity_keys": list(ENTITY_KEYS),
            "description": "Card fraud probability from 30-day spending stats and the transaction's amount."}


# ---------------------------------------------------------------- the scheduler and training jobs
@contextmanager
def scheduler_running(workspace: Any = None) -> Iterator[Any]:
    """Make sure a scheduler serves the workspace: start one in this process when none runs, stop it after."""
    from forgeml.jobs import Scheduler
    from forgeml.jobs.wake import SchedulerLock

    ws = _ws(workspace)
    if SchedulerLock(ws).holder() is not None:
        yield None
        return
    scheduler = Scheduler(ws).start_in_thread()
    try:
        yield scheduler
    finally:
        scheduler.stop()


def train_job(dataset_ref: str, epochs: int, params: dict[str, Any] | None = None, workspace: Any = None,
              timeout_s: float = 900.0) -> dict[str, Any]:
    """Run train.py on a dataset version as a scheduler job and wait for it; return its job and run ids."""
    from forgeml import jobs
    from forgeml.tracking import get_run

    ws = _ws(workspace)
    spec = jobs.JobSpec(script=str(ws.root / "train.py"), args=["--dataset", dataset_ref, "--epochs", str(epochs)],
                        params=dict(params or {}), name=f"train-{MODEL}", experiment=EXPERIMENT,
                        gpus=gpus_per_job(ws), workdir=str(ws.root))
    job = jobs.submit(spec, workspace=ws)
    with scheduler_running(ws):
        job = jobs.wait(job.id, timeout=timeout_s, workspace=ws)
    if job.state != jobs.SUCCEEDED:
        log, _ = jobs.read_logs(job.id, workspace=ws)
        tail = " | ".join(log.strip().splitlines()[-3:])
        raise JobError(f"training job {job.id} ended {job.state}: {job.reason or ''} {tail}".strip())
    run = get_run(job.run_id, workspace=ws)
    return {"job_id": job.id, "run_id": job.run_id, "val_loss": run.metrics.get("val_loss"),
            "roc_auc": run.metrics.get("roc_auc"), "params": dict(params or {})}


def register_trained(trained: dict[str, Any], data: dict[str, Any], workspace: Any = None) -> int:
    """Register the model a training run logged as the next STAGING version of `fraud`; return its number."""
    import tempfile
    from pathlib import Path

    from forgeml.datasets import read_dataset
    from forgeml.registry import register_model
    from forgeml.tracking import download_artifacts

    ws = _ws(workspace)
    with tempfile.TemporaryDirectory(prefix="forgeml-quickstart-") as tmp:
        download_artifacts(trained["run_id"], tmp, path="model", workspace=ws)
        files = [p for p in Path(tmp).rglob("model.pt")]
        if not files:
            raise JobError(f"training run {trained['run_id']} logged no model/model.pt artifact")
        example = input_example(read_dataset(data["dataset"], columns=MODEL_INPUTS, workspace=ws))
        metrics = {k: float(trained[k]) for k in ("val_loss", "roc_auc") if trained.get(k) is not None}
        mv = register_model(MODEL, path=files[0], flavor="torch", run_id=trained["run_id"], metrics=metrics,
                            params=trained.get("params") or {}, tags={"forgeml.pipeline": "retrain_fraud"},
                            workspace=ws, **register_options(data["dataset"], example))
    return mv.version


def production_params(workspace: Any = None) -> dict[str, Any]:
    """The hyperparameters of the production version of `fraud` (none when nothing is in production)."""
    from forgeml.errors import NotFoundError
    from forgeml.registry import get_model_version

    try:
        return dict(get_model_version(MODEL, "production", workspace=_ws(workspace)).params)
    except NotFoundError:
        return {}


def evaluate_version(version: int, holdout_ref: str, workspace: Any = None) -> dict[str, Any]:
    """Evaluate a version of `fraud` on a holdout, overall and by category; stored with the version."""
    from forgeml.evaluation import evaluate

    ws = _ws(workspace)
    result = evaluate(f"{MODEL}@{version}", holdout_ref, target=TARGET, task="classification", slices=["category"],
                      workspace=ws)
    by_category = {str(s["value"]): s["metrics"].get("roc_auc") for s in result.slices.get("category", [])}
    return {"version": version, "dataset": holdout_ref, "rows": result.rows, "roc_auc": result.metrics.get("roc_auc"),
            "pr_auc": result.metrics.get("pr_auc"), "by_category": by_category}


# ---------------------------------------------------------------- retraining on recent data
def recent_training_set(days: int = 30, workspace: Any = None, now: datetime | None = None) -> dict[str, Any]:
    """Build, register and validate a training set of the last `days` days of labelled transactions."""
    from forgeml.errors import DataValidationError

    ws = _ws(workspace)
    now = now or datetime.now(UTC)
    rows = entity_rows(read_transactions(ws), now - timedelta(days=days), now, now)
    built = build_training_set(rows, ws)
    dv, report = register_and_validate(built.table, ws)
    if not report.passed:
        raise DataValidationError(report.summary(), report=report)
    holdout = register_holdout(dv.ref, ws)
    return {"dataset": dv.ref, "holdout": holdout.ref, "rows": dv.num_rows, "join_s": built.join_s,
            "validation": report.summary()}
