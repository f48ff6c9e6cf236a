"""Per-arm metrics of an experiment from its matured predictions, the tests against control, and guardrails.

A prediction is matured once its label window has passed: only then is a missing conversion a real
"no". Requests still inside the window count towards the guardrails (latency, errors) but not the metric.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import ValidationError
from forgeml.experiments import stats
from forgeml.serving.arms import HOLDOUT

METRIC_KINDS = ("proportion", "mean", "ratio", "accuracy")


@dataclass
class MetricSpec:
    """What an experiment measures: the outcome joined to each request and how it is summarised."""

    kind: str = "proportion"
    outcome: str = "conversion"
    denominator: str = ""  # ratio metrics: the outcome summed in the denominator
    higher_is_better: bool = True

    def validate(self) -> None:
        """Raise ValidationError in one line when the metric cannot be computed."""
        if self.kind not in METRIC_KINDS:
            raise ValidationError(f"metric kind {self.kind!r} is not one of {', '.join(METRIC_KINDS)}")
        if self.kind == "ratio" and not self.denominator:
            raise ValidationError("a ratio metric needs a denominator outcome (e.g. --denominator sessions)")

    @property
    def outcomes(self) -> list[str]:
        """The outcome names this metric reads."""
        return [self.outcome] + ([self.denominator] if self.denominator else [])


@dataclass
class Guardrails:
    """Limits that stop an experiment when an arm breaks one (None: not checked)."""

    max_p99_ms: float | None = None
    max_error_rate: float | None = None
    min_metric: float | None = None
    min_requests: int = 50


@dataclass
class Report:
    """One look at an experiment: units per arm, comparisons with control, guardrail breaches."""

    experiment: str
    at: float
    arms: dict[str, dict[str, Any]]
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    breaches: list[str] = field(default_factory=list)
    matured: int = 0
    pending: int = 0
    notes: list[str] = field(default_factory=list)


def requests_frame(log: Any, experiment: str) -> Any:
    """One row per request of the experiment from the prediction log: arm, time, propensity, prediction."""
    import pandas as pd

    df = log.to_pandas() if hasattr(log, "to_pandas") else pd.DataFrame(log)
    if df.empty:
        return pd.DataFrame(columns=["_request_id", "_arm", "_ts", "_propensity", "_prediction", "_latency_ms",
                                     "_error", "_version"])
    if "_experiment" in df:
        df = df[df["_experiment"] == experiment]
    if "_propensity" not in df:
        df = df.assign(_propensity=float("nan"))
    # a batch request logs one row per predicted row; its first row stands for the request
    keep = ["_request_id", "_arm", "_ts", "_propensity", "_prediction", "_latency_ms", "_error", "_version"]
    return df[keep].drop_duplicates("_request_id", keep="first").reset_index(drop=True)


def join_outcomes(requests: Any, outcomes: Any, metric: MetricSpec, window_s: float, now: float) -> Any:
    """Add per matured request the metric's numerator (and denominator) from outcomes inside its window."""
    import numpy as np
    import pandas as pd

    req = requests.copy()
    ts = pd.to_datetime(req["_ts"], utc=True)
    req["_t"] = (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    req = req[req["_t"] <= now - window_s]
    if req.empty:
        return req.assign(y=np.array([], dtype=float), d=np.array([], dtype=float), labelled=np.array([], bool))
    out = outcomes.merge(req[["_request_id", "_t"]], left_on="request_id", right_on="_request_id", how="inner")
    # only outcomes inside [prediction time, prediction time + window] count; later ones are ignored
    out = out[(out["at"] >= out["_t"] - 1e-6) & (out["at"] <= out["_t"] + window_s)]
    if metric.kind == "accuracy":
        lab = out[out["name"] == metric.outcome].drop_duplicates("request_id", keep="last")
        req = req.merge(lab[["request_id", "value"]], left_on="_request_id", right_on="request_id", how="left")
        req["labelled"] = req["value"].notna() & req["_prediction"].notna()
        pred = req["_prediction"].to_numpy(dtype=float)
        guess = np.where((pred >= 0) & (pred <= 1) & (pred != np.round(pred)), (pred >= 0.5).astype(float), pred)
        req["y"] = (guess == req["value"].to_numpy(dtype=float)).astype(float)
        req["d"] = 1.0
        return req.drop(columns=["request_id", "value"])
    sums = out.groupby(["request_id", "name"])["value"].agg(["sum", "size"]).reset_index()

    def per_request(name: str, how: str) -> Any:
        part = sums[sums["name"] == name].set_index("request_id")[how]
        return req["_request_id"].map(part).fillna(0.0).to_numpy(dtype=float)

    req["y"] = (per_request(metric.outcome, "size") > 0).astype(float) if metric.kind == "proportion" else \
        per_request(metric.outcome, "sum")
    req["d"] = per_request(metric.denominator, "sum") if metric.kind == "ratio" else 1.0
    req["labelled"] = True
    return req


def compare(control: str, treatment: str, frame: Any, metric: MetricSpec, alpha: float) -> stats.Comparison:
    """Run the test that fits the metric kind for one treatment arm against control."""
    a = frame[(frame["_arm"] == control) & frame["labelled"]]
    b = frame[(frame["_arm"] == treatment) & frame["labelled"]]
    name = metric.outcome if metric.kind != "accuracy" else "accuracy"
    if metric.kind in ("proportion", "accuracy"):
        return stats.compare_proportions((control, float(a["y"].sum()), len(a)),
                                         (treatment, float(b["y"].sum()), len(b)), alpha, name)
    if metric.kind == "mean":
        return stats.compare_means((control, a["y"].to_numpy()), (treatment, b["y"].to_numpy()), alpha, name)
    return stats.compare_ratios((control, a["y"].to_numpy(), a["d"].to_numpy()),
                                (treatment, b["y"].to_numpy(), b["d"].to_numpy()), alpha,
                                f"{metric.outcome}/{metric.denominator}")


def arm_guardrails(requests: Any, guard: Guardrails) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per arm: requests, p99 latency and error rate over every request; the breaches among them."""
    import numpy as np

    arms: dict[str, dict[str, Any]] = {}
    breaches: list[str] = []
    for arm, part in requests.groupby("_arm"):
        lat = part["_latency_ms"].dropna().to_numpy(dtype=float)
        p99 = float(np.percentile(lat, 99)) if len(lat) else None
        err = float(part["_error"].notna().mean()) if len(part) else 0.0
        arms[str(arm)] = {"requests": int(len(part)), "latency_p99_ms": p99, "error_rate": err}
        if len(part) < guard.min_requests:
            continue
        if guard.max_p99_ms is not None and p99 is not None and p99 > guard.max_p99_ms:
            breaches.append(f"arm {arm}: p99 latency {p99:.1f} ms > {guard.max_p99_ms:g} ms")
        if guard.max_error_rate is not None and err > guard.max_error_rate:
            breaches.append(f"arm {arm}: error rate {err:.2%} > {guard.max_error_rate:.2%}")
    return arms, breaches


def analyze_frame(experiment: str, requests: Any, outcomes: Any, arms: list[str], control: str, metric: MetricSpec,
                  window_s: float, alpha: float = 0.05, guard: Guardrails | None = None,
                  previous_p: dict[str, float] | None = None, now: float | None = None,
                  tau: float | None = None) -> Report:
    """Analyse one look: per-arm metrics, each arm (holdout included) against control, and the guardrails."""
    metric.validate()
    guard = guard or Guardrails()
    now = time.time() if now is None else now
    summary, breaches = arm_guardrails(requests, guard)
    frame = join_outcomes(requests, outcomes, metric, window_s, now)
    report = Report(experiment, now, summary, breaches=breaches, matured=int(len(frame)),
                    pending=int(len(requests) - len(frame)))
    previous_p = previous_p or {}
    for arm in [a for a in arms if a != control] + ([HOLDOUT] if HOLDOUT in summary else []):
        try:
            cmp = compare(control, arm, frame, metric, alpha)
        except ValidationError as e:
            report.notes.append(f"{arm} vs {control}: {e}")
            continue
        stats.add_sequential(cmp, previous_p.get(arm, 1.0), tau, alpha)
        report.comparisons.append(cmp.to_dict())
    for arm in summary:
        labelled = frame[(frame["_arm"] == arm) & frame["labelled"]] if len(frame) else frame
        n = int(len(labelled))
        summary[arm]["matured"] = n
        if n == 0:
            summary[arm]["metric"] = None
            continue
        value = float(labelled["y"].sum() / labelled["d"].sum()) if metric.kind == "ratio" and \
            labelled["d"].sum() else float(labelled["y"].mean())
        summary[arm]["metric"] = value
        if guard.min_metric is not None and arm != HOLDOUT and n >= guard.min_requests and \
                math.isfinite(value) and value < guard.min_metric:
            report.breaches.append(f"arm {arm}: {metric.outcome} {value:.4g} below the floor {guard.min_metric:g}")
    return report
