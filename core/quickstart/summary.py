"""What a quickstart run did: each step's key numbers, as a value, JSON and a short text report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StepRecord:
    """One lifecycle step: its name, title, how long it took and what it reported."""

    name: str
    title: str
    seconds: float
    message: str


@dataclass
class Summary:
    """Every step's key numbers."""

    directory: str
    scale: str
    elapsed_s: float = 0.0
    steps: list[StepRecord] = field(default_factory=list)
    # data and features
    transactions: int = 0
    users: int = 0
    fraud_rate: float = 0.0
    feature_views: list[str] = field(default_factory=list)
    training_rows: int = 0
    pit_join_s: float = 0.0
    dataset: str = ""
    holdout: str = ""
    validation: str = ""
    # training
    study: str = ""
    trials_complete: int = 0
    trials_pruned: int = 0
    trials_failed: int = 0
    best_val_loss: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    model_version: int | None = None
    roc_auc: float | None = None
    evaluated_on: str = ""  # the dataset version of the evaluation roc_auc comes from
    roc_auc_by_category: dict[str, float | None] = field(default_factory=dict)
    promoted_version: int | None = None
    gates: list[str] = field(default_factory=list)
    # serving and monitoring
    materialized_rows: int = 0
    server_url: str = ""
    server_start_s: float = 0.0
    requests: int = 0
    request_errors: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    streamed_events: int = 0
    skew_share: float | None = None
    drift_requests: int = 0
    baseline_drift_share: float | None = None
    drift_share: float | None = None
    drifted_features: list[str] = field(default_factory=list)
    alert_id: int | None = None
    alert_message: str = ""
    pipeline_run: str = ""
    pipeline_status: str = ""
    retrained_version: int | None = None
    retrained_roc_auc: float | None = None
    retrained_evaluated_on: str = ""
    retrained_promoted: bool = False
    retrained_gates: list[str] = field(default_factory=list)
    served_version_after: int | None = None
    experiment: str = ""
    labels: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return plain values for JSON output."""
        return asdict(self)

    def report(self) -> list[str]:
        """Return the short text summary, one line per step, ending with the total time."""
        def num(value: float | None, digits: int = 3) -> str:
            return "n/a" if value is None else f"{value:.{digits}f}"

        slices = ", ".join(f"{k} {num(v)}" for k, v in sorted(self.roc_auc_by_category.items()))
        retrained = (f"fraud@{self.retrained_version} roc_auc={num(self.retrained_roc_auc)} on "
                     f"{self.retrained_evaluated_on}; "
                     + ("promoted to production" if self.retrained_promoted else "not promoted, it stays in staging"))
        if self.served_version_after is not None:
            retrained += f"; the running server switched to v{self.served_version_after}"
        lines = [
            f"data         {self.transactions:,} transactions, {self.users:,} users, {self.fraud_rate:.1%} fraud "
            f"(daily Parquet files)",
            f"features     {', '.join(self.feature_views)}",
            f"training set {self.training_rows:,} rows, point-in-time join {self.pit_join_s:.2f}s",
            f"dataset      {self.dataset}: {self.validation}; holdout {self.holdout}",
            f"tuning       {self.trials_complete} trials complete, {self.trials_pruned} pruned, {self.trials_failed} "
            f"failed; best val_loss {num(self.best_val_loss, 4)}",
            f"evaluation   fraud@{self.model_version} roc_auc={num(self.roc_auc)} on {self.evaluated_on}; "
            f"by category: {slices}",
            f"registry     fraud@{self.promoted_version} in production; gates passed: {', '.join(self.gates)}",
            f"online       {self.materialized_rows:,} feature rows materialized",
            f"serving      {self.requests:,} requests, p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
            f"{self.request_errors} errors",
            f"drift        drift share {num(self.baseline_drift_share, 2)} before, {num(self.drift_share, 2)} after; "
            f"drifted: {', '.join(self.drifted_features) or 'none'}",
            f"alert        #{self.alert_id} {self.alert_message}",
            f"pipeline     retrain_fraud run {self.pipeline_run} {self.pipeline_status}",
            f"retrained    {retrained}",
            f"experiment   {self.experiment or 'not run'}",
            f"labels       {self.labels or 'not run'}",
        ]
        if self.retrained_gates and not self.retrained_promoted:
            lines.append(f"             gates: {'; '.join(self.retrained_gates)}")
        lines.append(f"total        {self.elapsed_s:.1f}s")
        return lines
