"""The metrics alert rules watch, each computed over one window of a model's prediction log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from forgeml.errors import NotFoundError, ValidationError

# name -> one-line doc, for `forgeml monitor rules` and did-you-mean errors
METRICS: dict[str, str] = {
    "drift_share": "fraction of feature columns drifted versus the reference (0..1)",
    "drifted_columns": "number of feature columns drifted versus the reference",
    "prediction_drift": "1 when the prediction score drifted versus the reference's scores, else 0",
    "score_shift": "|window mean score - reference mean| in reference standard deviations",
    "accuracy": "share of labelled predictions that were right (late labels joined by request id)",
    "mae": "mean absolute error of labelled predictions",
    "rmse": "root mean squared error of labelled predictions",
    "latency_p50": "median request latency in ms",
    "latency_p95": "95th percentile request latency in ms",
    "latency_p99": "99th percentile request latency in ms",
    "error_rate": "share of requests that returned an error",
    "requests": "number of requests served",
    "skew_share": "largest share, over the model's features, of served values that differ from the offline "
                  "recomputation at the request time (training-serving skew, 0..1)",
}

Value = tuple[float | None, dict[str, Any]]


def reference_for(workspace: Any, model: str, reference: str) -> Any:
    """Return the reference table of a rule: its own dataset, else the model's training dataset version."""
    from forgeml.monitoring.sources import read_dataset

    if reference:
        return read_dataset(reference, workspace)
    try:
        from forgeml.registry import get_model_version
    except ImportError as e:
        raise NotFoundError(f"model {model!r}: no reference dataset given and the registry is not available; "
                            "set `reference = \"name@vN\"` on the rule") from e
    version = get_model_version(model, "production", workspace=workspace)
    datasets = list(getattr(version, "datasets", None) or [])
    if not datasets:
        raise NotFoundError(f"model {model!r} version {version.version} records no training dataset; "
                            "set `reference = \"name@vN\"` on the rule")
    return read_dataset(datasets[0], workspace)


def compute(metric: str, workspace: Any, rule: Any, start: datetime, end: datetime) -> Value:
    """Compute one metric for a rule over [start, end); the value is None when the window has no data."""
    if metric not in METRICS:
        from forgeml.errors import unknown_name

        raise unknown_name("metric", metric, METRICS, f"rule {rule.name!r}")
    from forgeml.monitoring.sources import read_prediction_log

    log = read_prediction_log(rule.model, start, end, workspace=workspace)
    if log.num_rows == 0:
        return None, {"rows": 0}
    return _COMPUTE[metric](workspace, rule, log, start, end)


def _drift(workspace: Any, rule: Any, log: Any, start: datetime, end: datetime) -> Any:
    from forgeml.monitoring.drift import drift_report

    reference = reference_for(workspace, rule.model, rule.reference)
    return drift_report(reference, log, columns=rule.columns or None, workspace=workspace, model=rule.model)


def _drift_share(workspace: Any, rule: Any, log: Any, start: datetime, end: datetime) -> Value:
    report = _drift(workspace, rule, log, start, end)
    return report.share, {"rows": log.num_rows, "drifted_columns": report.drifted_columns}


def _drifted_columns(workspace: Any, rule: Any, log: Any, start: datetime, end: datetime) -> Value:
    report = _drift(workspace, rule, log, start, end)
    return float(len(report.drifted_columns)), {"rows": log.num_rows, "drifted_columns": report.drifted_columns}


def _prediction_drift(workspace: Any, rule: Any, log: Any, start: datetime, end: datetime) -> Value:
    from forgeml.monitoring.drift import drift_report

    reference = reference_for(workspace, rule.model, rule.reference)
    report = drift_report(reference, log, columns=["_prediction"], workspace=workspace)
    col = report.columns[0]
    return float(col.drifted), {"rows": log.num_rows, "severity": col.severity}


def _score_shift(workspace: Any, rule: Any, log: Any, start: datetime, end: datetime) -> Value:
    from forgeml.monitoring.output import score_windows

    if rule.reference:
        reference = reference_for(workspace, rule.model, rule.reference)
    else:
        # no reference scores: the window just before this one is the baseline
        from forgeml.monitoring.sources import read_prediction_log

        reference = read_prediction_log(rule.model, start - (end - start), start, workspace=workspace)
        if reference.num_rows == 0:
            return None, {"rows": log.num_rows, "note": "no earlier window to compare with"}
    settings = workspace.config.section("monitoring")
    windows = score_windows(log, None, reference, settings.score_shift_std)
    if windows.empty:
        return None, {"rows": log.num_rows}
    row = windows.iloc[-1]
    return float(row["shift_std"]), {"rows": log.num_rows, "mean": float(row["mean"]),
                                     "reference_mean": windows.attrs["reference_mean"],
                                     "reference_std": windows.attrs["reference_std"]}


def _skew_share(workspace: Any, rule: Any, log: Any, start: datetime, end: datetime) -> Value:
    from forgeml.monitoring.skew import skew_report

    report = skew_report(rule.model, start, end, workspace=workspace)
    return report.share, {"rows": report.rows, "skewed_features": report.skewed_features}


def _labelled(key: str) -> Callable[..., Value]:
    def compute_labelled(workspace: Any, rule: Any, log: Any, start: datetime, end: datetime) -> Value:
        import numpy as np

        from forgeml.monitoring.output import labelled_metrics
        from forgeml.monitoring.sources import read_labels

        out = labelled_metrics(log, read_labels(rule.model, workspace), None)
        labelled = int(out["labelled"].sum()) if not out.empty else 0
        if labelled == 0:
            return None, {"rows": log.num_rows, "labelled": 0}
        weights = out["labelled"].to_numpy()
        values = out[key].to_numpy(dtype=float)
        ok = ~np.isnan(values) & (weights > 0)
        if not ok.any():
            return None, {"rows": log.num_rows, "labelled": labelled}
        return float(np.average(values[ok], weights=weights[ok])), {"rows": log.num_rows, "labelled": labelled}

    return compute_labelled


def _service(key: str) -> Callable[..., Value]:
    def compute_service(workspace: Any, rule: Any, log: Any, start: datetime, end: datetime) -> Value:
        from forgeml.monitoring.output import summary

        figures = summary(log)
        return figures[key], {"rows": log.num_rows, "requests": figures["requests"]}

    return compute_service


_COMPUTE: dict[str, Callable[..., Value]] = {
    "drift_share": _drift_share,
    "drifted_columns": _drifted_columns,
    "prediction_drift": _prediction_drift,
    "score_shift": _score_shift,
    "accuracy": _labelled("accuracy"),
    "mae": _labelled("mae"),
    "rmse": _labelled("rmse"),
    "latency_p50": _service("latency_p50"),
    "latency_p95": _service("latency_p95"),
    "latency_p99": _service("latency_p99"),
    "error_rate": _service("error_rate"),
    "requests": _service("requests"),
    "skew_share": _skew_share,
}


def check_metric(metric: str, where: str) -> None:
    """Raise a did-you-mean ValidationError for an unknown metric name."""
    if metric not in METRICS:
        from forgeml.errors import did_you_mean

        raise ValidationError(f"{where}: unknown metric {metric!r}{did_you_mean(metric, METRICS)}; "
                              f"choices: {', '.join(METRICS)}")
