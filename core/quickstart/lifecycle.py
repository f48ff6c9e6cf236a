"""The quickstart's lifecycle, one function per step; each returns a one-line report and fills the summary."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from forgeml.errors import ForgeError, GateFailedError
from forgeml.quickstart import training
from forgeml.quickstart.experiment import run_experiment
from forgeml.quickstart.labels import label_with_active_learning
from forgeml.quickstart.summary import Summary
from forgeml.quickstart.traffic import ModelServer, Traffic, request_rows, send, wait_for_log


@dataclass(frozen=True)
class Scale:
    """How much the quickstart generates, tunes and sends."""

    name: str = "default"
    users: int = 1500
    merchants: int = 150
    per_user_day: float = 0.8
    history_days: int = 60  # the first 30 only fill the 30-day windows
    live_days: int = 10  # the recent, drifted period after the first deployment
    trials: int = 4
    epochs: int = 6
    normal_requests: int = 300
    drift_requests: int = 600
    retrain_days: int = 30
    min_auc: float = 0.75
    amount_scale: float = 1.8

    def __post_init__(self) -> None:
        from forgeml.errors import ValidationError
        from forgeml.quickstart.features import WINDOW_DAYS

        if self.history_days <= WINDOW_DAYS:
            raise ValidationError(f"quickstart scale {self.name!r}: history_days must exceed the {WINDOW_DAYS}-day "
                                  f"feature window, got {self.history_days}")
        small = [k for k in ("users", "merchants", "live_days", "trials", "epochs", "normal_requests",
                             "drift_requests", "retrain_days") if getattr(self, k) < 1]
        if small or self.per_user_day <= 0:
            raise ValidationError(f"quickstart scale {self.name!r}: {(small or ['per_user_day'])[0]} must be positive")


SCALES = {
    "default": Scale(),
    "small": Scale("small", users=600, per_user_day=2.0, history_days=45, trials=2, epochs=4, normal_requests=150,
                   drift_requests=300),
    # the test suite's size: the whole lifecycle with the least work that still learns something
    "tiny": Scale("tiny", users=300, per_user_day=3.0, history_days=45, live_days=8, trials=2, epochs=3,
                  normal_requests=60, drift_requests=120),
}


@dataclass
class Quickstart:
    """Everything the steps share while the quickstart runs."""

    root: Path
    scale: Scale
    summary: Summary
    ws: Any = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    history: Any = None
    live: Any = None
    split_at: datetime | None = None  # when the first model was trained: the history ends here
    training_set: Any = None
    example: Any = None
    server: ModelServer | None = None
    traffic: list[Traffic] = field(default_factory=list)
    cleanup: ExitStack = field(default_factory=ExitStack)
    # how far a long step has got, shown on its status line ("3/4 trials done, 1 running")
    report: Callable[[str], None] = field(default=lambda message: None)

    @property
    def today(self) -> datetime:
        """Midnight of the run's day: the synthetic periods end there."""
        from forgeml.quickstart.data import midnight

        return midnight(self.now)


# ---------------------------------------------------------------- data and features
def generate(qs: Quickstart) -> str:
    """Write the history of card transactions as daily Parquet files, ending when the first model is trained."""
    import pyarrow.compute as pc

    from forgeml.quickstart.data import population, transactions, write_partitioned
    from forgeml.quickstart.features import TRANSACTIONS

    s = qs.scale
    qs.split_at = qs.today - timedelta(days=s.live_days)
    start = qs.split_at - timedelta(days=s.history_days)
    people = population(s.users, s.merchants)
    qs.history = transactions(days=s.history_days, per_user_day=s.per_user_day, seed=1, start=start, people=people)
    write_partitioned(qs.history, qs.root / TRANSACTIONS)
    _publish_card_events(qs, qs.history)
    qs.summary.transactions = qs.history.num_rows
    qs.summary.users = s.users
    qs.summary.fraud_rate = float(pc.mean(qs.history["is_fraud"]).as_py())
    return (f"{qs.history.num_rows:,} transactions of {s.users:,} users over {s.history_days} days, "
            f"{qs.summary.fraud_rate:.1%} fraud")


def _publish_card_events(qs: Quickstart, rows: Any) -> int:
    """Append card events to the card event stream (whose folder is also their offline history)."""
    from forgeml.features import FeatureStore
    from forgeml.quickstart.features import CARD_EVENT_COLUMNS, CARD_STREAM

    return FeatureStore(qs.ws).publish(CARD_STREAM, rows.select(CARD_EVENT_COLUMNS))


def define_features(qs: Quickstart) -> str:
    """Apply the user entity, the 30-day stats view and the on-demand amount ratio."""
    from forgeml.features import FeatureStore
    from forgeml.quickstart.features import definitions

    changes = FeatureStore(qs.ws).apply(definitions())
    qs.summary.feature_views = [c.name for c in changes if c.kind != "entity"]
    return f"applied {len(changes)} definitions: {', '.join(f'{c.kind} {c.name}' for c in changes)}"


def build_training_set(qs: Quickstart) -> str:
    """Point-in-time join of the features onto every labelled transaction after the 30-day warm-up."""
    from forgeml.quickstart.features import WINDOW_DAYS

    start = qs.split_at - timedelta(days=qs.scale.history_days - WINDOW_DAYS)
    rows = training.entity_rows(qs.history, start, qs.split_at, qs.split_at)
    qs.training_set = training.build_training_set(rows, qs.ws)
    qs.summary.training_rows = qs.training_set.table.num_rows
    qs.summary.pit_join_s = qs.training_set.join_s
    return (f"{qs.training_set.table.num_rows:,} rows ({qs.training_set.entity_rows:,} labelled transactions) "
            f"joined in {qs.training_set.join_s:.2f}s")


def register_dataset(qs: Quickstart) -> str:
    """Register the training set, validate it with expectations.toml, and hold out its latest rows."""
    from forgeml.errors import DataValidationError

    dv, report = training.register_and_validate(qs.training_set.table, qs.ws)
    if not report.passed:
        raise DataValidationError(report.summary(), report=report)
    holdout = training.register_holdout(dv.ref, qs.ws)
    qs.example = training.input_example(qs.training_set.table)
    qs.summary.dataset, qs.summary.holdout = dv.ref, holdout.ref
    qs.summary.validation = f"{len(report.results)} expectations passed"
    return f"{dv.ref}: {dv.num_rows:,} rows, {qs.summary.validation}; holdout {holdout.ref} ({holdout.num_rows:,} rows)"


# ---------------------------------------------------------------- training and the registry
def tune(qs: Quickstart) -> str:
    """Tune train.py's hyperparameters, each trial a scheduler job, then train and register the best."""
    from forgeml.tuning import TuneConfig, load_space
    from forgeml.tuning import tune as run_study

    qs.cleanup.enter_context(training.scheduler_running(qs.ws))
    s = qs.scale
    config = TuneConfig(
        script=str(qs.root / "train.py"), space=load_space(qs.root / "space.toml"), trials=s.trials,
        parallel="auto", sampler="tpe", pruner="asha", metric="val_loss", direction="minimize", seed=7,
        study_name="fraud-tuning", args=["--dataset", qs.summary.dataset, "--epochs", str(s.epochs)],
        gpus_per_trial=training.gpus_per_job(qs.ws), experiment=training.EXPERIMENT, final_run=True,
        register_as=training.MODEL, flavor="torch",
        register_options=training.register_options(qs.summary.dataset, qs.example))
    result = run_study(config, workspace=qs.ws, progress=lambda done, total, running: qs.report(
        f"{done}/{total} trials done, {running} running"))
    if result.model_version is None:
        raise ForgeError(f"no trial of study {result.study} completed ({result.failed} failed, {result.pruned} "
                         f"pruned); see `forgeml jobs ls` and `forgeml jobs logs JOB`")
    qs.summary.study = result.study
    qs.summary.trials_complete, qs.summary.trials_pruned = result.complete, result.pruned
    qs.summary.trials_failed = result.failed
    qs.summary.best_val_loss, qs.summary.best_params = result.best_value, result.best_params
    qs.summary.model_version = result.model_version
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best_params.items())
    return (f"{result.complete} trials complete, {result.pruned} pruned; best val_loss {result.best_value:.4f} "
            f"({params}); registered fraud@{result.model_version}")


def evaluate(qs: Quickstart) -> str:
    """Evaluate the new version on the holdout, overall and per category."""
    out = training.evaluate_version(qs.summary.model_version, qs.summary.holdout, qs.ws)
    qs.summary.roc_auc, qs.summary.evaluated_on = _headline_auc(qs, qs.summary.model_version)
    qs.summary.roc_auc_by_category = out["by_category"]
    return (f"roc_auc {qs.summary.roc_auc:.3f} on {qs.summary.evaluated_on} ({out['rows']:,} held-out rows), "
            f"{len(out['by_category'])} category slices")


def _headline_auc(qs: Quickstart, version: int) -> tuple[float | None, str]:
    """The version's ROC-AUC and dataset by the rule `models ls` and the TUI show: its newest evaluation."""
    from forgeml.registry import get_model_version, headline

    numbers = headline(get_model_version(training.MODEL, version, workspace=qs.ws), workspace=qs.ws)
    return numbers["metrics"].get("roc_auc"), numbers["dataset"] or numbers["source"]


def promote(qs: Quickstart) -> str:
    """Promote the tuned version to production through the gates configured in plugins.toml."""
    from forgeml.registry import promote as promote_version

    result = promote_version(training.MODEL, qs.summary.model_version, "production", actor="quickstart",
                             reason="tuned, evaluated on the holdout", workspace=qs.ws)
    qs.summary.promoted_version = result.model_version.version
    qs.summary.gates = [g.gate for g in result.gates]
    return (f"fraud@{result.model_version.version} is in production; "
            + "; ".join(f"{g.gate}: {g.message}" for g in result.gates))


# ---------------------------------------------------------------- serving and monitoring
def materialize(qs: Quickstart) -> str:
    """Copy each user's latest 30-day stats as of the deployment into the online store."""
    from forgeml.features import FeatureStore

    results = FeatureStore(qs.ws).materialize(end=qs.split_at)
    qs.summary.materialized_rows = sum(r["rows"] for r in results)
    return "; ".join(f"{r['view']}: {r['rows']:,} rows" for r in results)


def _latencies(qs: Quickstart) -> None:
    every = Traffic(latencies_ms=[ms for t in qs.traffic for ms in t.latencies_ms])
    qs.summary.requests = sum(t.requests for t in qs.traffic)
    qs.summary.request_errors = sum(t.errors for t in qs.traffic)
    qs.summary.p50_ms, qs.summary.p99_ms = every.percentile(50), every.percentile(99)


def _record_traffic(qs: Quickstart, traffic: Traffic, what: str) -> None:
    if traffic.errors:
        raise ForgeError(f"{traffic.errors} of {traffic.requests} {what} requests failed: {traffic.first_error}")


def serve(qs: Quickstart) -> str:
    """Start `forgeml serve fraud@production` on a free loopback port and replay recent transactions."""
    import pyarrow as pa
    import pyarrow.compute as pc

    qs.server = ModelServer(qs.root, f"{training.MODEL}@production")
    qs.cleanup.callback(qs.server.stop)
    qs.summary.server_start_s = qs.server.start()
    qs.summary.server_url = qs.server.url
    ts = qs.history["event_timestamp"]
    recent = qs.history.filter(pc.greater_equal(ts, pa.scalar(qs.split_at - timedelta(days=5), ts.type)))
    rows = request_rows(recent, qs.scale.normal_requests, seed=11)
    _stream_live_events(qs, rows)
    traffic = send(qs.server.url, training.MODEL, rows)
    _record_traffic(qs, traffic, "normal")
    qs.traffic.append(traffic)
    _latencies(qs)
    return (f"ready in {qs.summary.server_start_s:.1f}s at {qs.server.url}; {traffic.requests} requests, "
            f"p50 {traffic.percentile(50):.1f} ms, p99 {traffic.percentile(99):.1f} ms, "
            f"mean score {traffic.mean_score:.3f}")


def _stream_live_events(qs: Quickstart, rows: list[dict[str, Any]]) -> None:
    """The simulated traffic's card events: published as they happen (just now), applied by the stream processor."""
    import pyarrow as pa

    from forgeml.features import FeatureStore
    from forgeml.features.streaming import run_streams
    from forgeml.quickstart.features import ACTIVITY_VIEW

    now = datetime.now(UTC)
    events = pa.table({"user_id": pa.array([r["user_id"] for r in rows], pa.int64()),
                       "event_timestamp": pa.array([now - timedelta(seconds=0.5 * (len(rows) - i))
                                                    for i in range(len(rows))], pa.timestamp("us", tz="UTC")),
                       "amount": pa.array([r["amount"] for r in rows], pa.float64())})
    _publish_card_events(qs, events)
    status = run_streams(FeatureStore(qs.ws), [ACTIVITY_VIEW], until_idle=True, poll_timeout_s=0.2)[0]
    qs.summary.streamed_events = status.applied


def check_skew(qs: Quickstart) -> str:
    """Recompute every feature the model was served offline at the request times: there must be no skew."""
    from forgeml.monitoring.skew import skew_report

    wait_for_log(qs.ws, training.MODEL, qs.summary.requests)
    report = skew_report(training.MODEL, workspace=qs.ws)
    qs.summary.skew_share = report.share
    if report.skewed_features:
        worst = next(f for f in report.features if f.skewed)
        raise ForgeError(f"training-serving skew in {', '.join(report.skewed_features)}: {worst.mismatches} of "
                         f"{worst.rows} served {worst.feature} values differ offline, e.g. {worst.examples[:1]}")
    return (f"{report.rows} served requests recomputed offline: {len(report.features)} features, no mismatch "
            f"({qs.summary.streamed_events:,} card events streamed)")


def inject_drift(qs: Quickstart) -> str:
    """Land the recent period's transactions (bigger amounts, more online shopping) and serve them."""
    from forgeml.features import FeatureStore
    from forgeml.quickstart.data import population, transactions, write_partitioned
    from forgeml.quickstart.features import TRANSACTIONS

    s = qs.scale
    qs.live = transactions(days=s.live_days, per_user_day=s.per_user_day, seed=2, start=qs.split_at,
                           amount_scale=s.amount_scale, category_shift=True, people=population(s.users, s.merchants))
    write_partitioned(qs.live, qs.root / TRANSACTIONS)
    FeatureStore(qs.ws).materialize(end=qs.now)  # from the deployment's watermark to now
    traffic = send(qs.server.url, training.MODEL, request_rows(qs.live, s.drift_requests, seed=12))
    _record_traffic(qs, traffic, "drifted")
    qs.traffic.append(traffic)
    _latencies(qs)
    qs.summary.drift_requests = traffic.requests
    return (f"{qs.live.num_rows:,} new transactions (amounts x{s.amount_scale}, a third more online); "
            f"{traffic.requests} requests, mean score {traffic.mean_score:.3f}")


def detect_and_retrain(qs: Quickstart) -> str:
    """Compare served features with the training data, then evaluate the alert rule, which starts retraining."""
    from forgeml.datasets import read_dataset
    from forgeml.monitoring import drift_report, read_prediction_log
    from forgeml.monitoring import evaluate as evaluate_rules
    from forgeml.pipelines import get_run
    from forgeml.pipelines.triggers import trigger_events
    from forgeml.quickstart.layout import MONITORED, RULE

    expected = qs.summary.requests
    if wait_for_log(qs.ws, training.MODEL, expected) < expected:
        raise ForgeError(f"the prediction log holds fewer than the {expected} rows served; see {qs.server.log_path}")
    log = read_prediction_log(training.MODEL, workspace=qs.ws)
    reference = read_dataset(qs.summary.dataset, workspace=qs.ws)
    normal = log.slice(0, qs.summary.requests - qs.summary.drift_requests)
    drifted = log.slice(normal.num_rows)
    qs.summary.baseline_drift_share = drift_report(reference, normal, columns=MONITORED, workspace=qs.ws).share
    report = drift_report(reference, drifted, columns=MONITORED, workspace=qs.ws)
    qs.summary.drift_share, qs.summary.drifted_features = report.share, report.drifted_columns
    outcome = evaluate_rules(qs.ws, only=[RULE])[0]
    if outcome.outcome == "error":
        raise ForgeError(f"alert rule {RULE!r} could not be evaluated: {outcome.error}")
    if outcome.alert is None or outcome.outcome != "fired":
        raise ForgeError(f"alert rule {RULE!r} did not fire (drift share {outcome.value}, outcome "
                         f"{outcome.outcome}); the drift was too weak to detect")
    qs.summary.alert_id, qs.summary.alert_message = outcome.alert.id, outcome.alert.message
    events = [e for e in trigger_events(qs.ws) if e["cause"].startswith(f"alert:{outcome.alert.id} ")]
    if not events or not events[0]["run_id"]:
        why = events[0]["error"] if events else "no pipeline was started"
        raise ForgeError(f"alert {outcome.alert.id} did not start the retraining pipeline: {why}")
    run = get_run(events[0]["run_id"], workspace=qs.ws)
    qs.summary.pipeline_run, qs.summary.pipeline_status = run.id, run.status
    if run.status != "SUCCEEDED":
        failed = next((s.node for s in run.steps if s.state == "FAILED"), "?")
        raise ForgeError(f"retraining pipeline run {run.id} failed at step {failed!r}: {run.error}")
    out = run.output("evaluate", qs.ws)
    qs.summary.retrained_version = out["version"]
    qs.summary.retrained_roc_auc, qs.summary.retrained_evaluated_on = _headline_auc(qs, out["version"])
    return (f"drifted: {', '.join(report.drifted_columns)}; alert #{outcome.alert.id} started pipeline run "
            f"{run.id}: fraud@{out['version']} trained on {run.output('build_training_set', qs.ws)['dataset']}, "
            f"roc_auc {qs.summary.retrained_roc_auc:.3f} on {qs.summary.retrained_evaluated_on}")


def promote_retrained(qs: Quickstart) -> str:
    """Try the retrained version against the gates; when it passes, the running server picks it up."""
    import time

    from forgeml.registry import gate_results
    from forgeml.registry import promote as promote_version

    version = qs.summary.retrained_version
    try:
        result = promote_version(training.MODEL, version, "production", actor="quickstart",
                                 reason=f"retrained after drift alert #{qs.summary.alert_id}", workspace=qs.ws)
    except GateFailedError:
        qs.summary.retrained_gates = [f"{g['gate']}: {g['message']}"
                                      for g in gate_results(training.MODEL, version, workspace=qs.ws)]
        return f"fraud@{version} stays in staging: {'; '.join(qs.summary.retrained_gates)}"
    qs.summary.retrained_promoted = True
    qs.summary.retrained_gates = [f"{g.gate}: {g.message}" for g in result.gates]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and qs.server.served_version(training.MODEL) != version:
        time.sleep(0.5)
    check = send(qs.server.url, training.MODEL, request_rows(qs.live, 20, seed=13))
    answered = sorted(check.versions)
    qs.summary.served_version_after = version if answered == [version] else None
    return (f"fraud@{version} is in production; the same running server answered {check.requests} more requests "
            f"with version {', '.join(map(str, answered)) or 'none'}")


def stop_server(qs: Quickstart) -> str:
    """Stop the model server (it flushes its prediction log first)."""
    if qs.server is not None:
        qs.server.stop()
    return "stopped"


Step = tuple[str, str, Callable[[Quickstart], str]]
STEPS: list[Step] = [
    ("generate", "Generate card transactions", generate),
    ("features", "Define and apply features", define_features),
    ("training_set", "Build the training set (point in time)", build_training_set),
    ("dataset", "Register and validate the dataset", register_dataset),
    ("tune", "Tune and train through the scheduler", tune),
    ("evaluate", "Evaluate on the holdout by category", evaluate),
    ("promote", "Promote through the gates", promote),
    ("materialize", "Materialize features online", materialize),
    ("serve", "Serve on loopback and send traffic", serve),
    ("skew", "Check training-serving skew", check_skew),
    ("drift", "Inject drift into later traffic", inject_drift),
    ("detect", "Detect drift, alert and retrain", detect_and_retrain),
    ("promote_retrained", "Promote the retrained model", promote_retrained),
    ("experiment", "Run an experiment with a holdout and late labels", run_experiment),
    ("labels", "Chargebacks as labels, then active learning", label_with_active_learning),
    ("stop", "Stop the server", stop_server),
]
