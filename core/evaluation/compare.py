"""Champion vs challenger with bootstrap confidence intervals, and backtests over rolling time windows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from forgeml.errors import ValidationError
from forgeml.evaluation.evaluate import (
    Predictions,
    _workspace,
    load_for_evaluation,
    load_table,
    predict,
    score,
)
from forgeml.evaluation.metrics import higher_is_better


@dataclass
class MetricComparison:
    """One metric for champion and challenger with bootstrap intervals of each and of the difference."""

    metric: str
    champion: float | None
    challenger: float | None
    difference: float | None
    champion_ci: tuple[float, float] | None
    challenger_ci: tuple[float, float] | None
    difference_ci: tuple[float, float] | None
    challenger_better_prob: float | None
    higher_is_better: bool


@dataclass
class Comparison:
    """Champion vs challenger on the same rows of the same dataset version."""

    champion: str
    challenger: str
    dataset: str
    target: str
    task: str
    rows: int
    n_boot: int
    confidence: float
    metrics: list[MetricComparison] = field(default_factory=list)
    importance: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return plain values for JSON output."""
        return asdict(self)


def _pick(values: Any, idx: Any) -> Any:
    return None if values is None else values[idx]


def _subset(p: Predictions, idx: Any) -> Predictions:
    return Predictions(p.task, p.y_true[idx], p.y_pred[idx], _pick(p.proba, idx), p.classes, _pick(p.query, idx))


def _interval(values: Any, lo: float, hi: float) -> tuple[float, float] | None:
    import numpy as np

    return (float(np.percentile(values, lo)), float(np.percentile(values, hi))) if len(values) else None


def compare(champion: Any, challenger: Any, dataset: Any, target: str, *, metrics: list[str] | None = None,
            task: str | None = None, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0,
            query_column: str | None = None, importance: bool = False, workspace: Any = None) -> Comparison:
    """Score both models on the same rows and bootstrap (shared resamples) intervals of each and the gap.

    With importance=True, each model's mean |SHAP| and permutation importance are lined up by feature.
    """
    import numpy as np

    ws = _workspace(workspace)
    table, label = load_table(dataset, ws)
    champ, champ_label, _ = load_for_evaluation(champion, ws)
    chall, chall_label, _ = load_for_evaluation(challenger, ws)
    pa_ = predict(champ, table, target, task, query_column)
    pb = predict(chall, table, target, pa_.task, query_column)
    base_a, base_b = score(pa_), score(pb)
    names = metrics or [m for m in base_a if base_a[m] is not None and base_b.get(m) is not None]
    missing = [m for m in names if m not in base_a]
    if missing:
        from forgeml.errors import unknown_name

        raise unknown_name("metric", missing[0], base_a)
    n = table.num_rows
    rng = np.random.default_rng(seed)
    draws: dict[str, list[tuple[float, float]]] = {m: [] for m in names}
    if pa_.task == "ranking":  # resample whole queries so a query's rows stay together
        queries = np.unique(pa_.query)
        rows_of = {q: np.flatnonzero(pa_.query == q) for q in queries}
    fast = {m: _fast_metric(pa_.task, m, pa_) for m in names}
    for _ in range(n_boot):
        if pa_.task == "ranking":
            idx = np.concatenate([rows_of[q] for q in rng.choice(queries, len(queries))])
        else:
            idx = rng.integers(0, n, n)
        sa = sb = None
        for m in names:
            if fast[m] is not None:
                va, vb = fast[m](pa_, idx), fast[m](pb, idx)
            else:
                if sa is None:
                    sa, sb = score(_subset(pa_, idx)), score(_subset(pb, idx))
                va, vb = sa.get(m), sb.get(m)
            if va is not None and vb is not None:
                draws[m].append((va, vb))
    lo, hi = (1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100
    out = Comparison(champ_label, chall_label, label, target, pa_.task, n, n_boot, confidence)
    for m in names:
        d = np.array(draws[m]) if draws[m] else np.empty((0, 2))
        better = higher_is_better(m)
        diff = d[:, 1] - d[:, 0]
        out.metrics.append(MetricComparison(
            m, base_a[m], base_b[m],
            None if base_a[m] is None or base_b[m] is None else base_b[m] - base_a[m],
            _interval(d[:, 0], lo, hi), _interval(d[:, 1], lo, hi), _interval(diff, lo, hi),
            float(np.mean(diff > 0) if better else np.mean(diff < 0)) if len(diff) else None, better,
        ))
    if importance:
        from forgeml.evaluation.importance import compare_importance, global_importance

        out.importance = compare_importance(global_importance(champ, table, target, pa_.task, ws)["features"],
                                            global_importance(chall, table, target, pa_.task, ws)["features"])
    return out


def _fast_metric(task: str, metric: str, p: Predictions) -> Callable[[Predictions, Any], float | None] | None:
    """Return a numpy version of a metric for bootstrap resamples (same values as scikit-learn's), or None."""
    import numpy as np

    binary = p.proba is None or np.ndim(p.proba) == 1
    if task == "classification" and metric == "accuracy":
        return lambda q, i: float(np.mean(q.y_true[i] == q.y_pred[i]))
    if task == "classification" and metric == "roc_auc" and binary and p.proba is not None:
        from scipy.stats import rankdata

        def auc(q: Predictions, i: Any) -> float | None:
            y, s = q.y_true[i], q.proba[i]
            pos = int(y.sum())
            neg = len(y) - pos
            if pos == 0 or neg == 0:
                return None
            ranks = rankdata(s)  # Mann-Whitney U with average ranks for ties equals ROC-AUC
            return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))
        return auc
    if task == "classification" and metric == "log_loss" and binary and p.proba is not None:
        def log_loss(q: Predictions, i: Any) -> float:
            eps = np.finfo(np.float64).eps  # what scikit-learn clips with
            y, s = q.y_true[i], np.clip(q.proba[i], eps, 1 - eps)
            return float(-np.mean(y * np.log(s) + (1 - y) * np.log(1 - s)))
        return log_loss
    if task == "regression" and metric in ("rmse", "mae", "r2"):
        def reg(q: Predictions, i: Any) -> float | None:
            y, f = q.y_true[i], q.y_pred[i]
            if metric == "rmse":
                return float(np.sqrt(np.mean((y - f) ** 2)))
            if metric == "mae":
                return float(np.mean(np.abs(y - f)))
            total = float(np.sum((y - y.mean()) ** 2))
            return None if total == 0 else 1 - float(np.sum((y - f) ** 2)) / total
        return reg
    return None


@dataclass
class BacktestWindow:
    """Metrics of one time window."""

    start: Any
    end: Any
    rows: int
    metrics: dict[str, float | None]
    train_rows: int | None = None


def backtest(model: Any, dataset: Any, target: str, time_column: str, *, window: Any, step: Any = None,
             task: str | None = None, train: Callable[[Any], Any] | None = None, min_rows: int = 1,
             workspace: Any = None) -> list[BacktestWindow]:
    """Score a model over rolling windows of time_column (window/step: a duration like "7D" or a number).

    With ``train(table) -> model``, each window is predicted by a model trained on all rows before it
    (walk-forward; the returned object's ``predict`` receives the window's Arrow table); otherwise the
    given model is scored on every window.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    ws = _workspace(workspace)
    table, _ = load_table(dataset, ws)
    if time_column not in table.column_names:
        from forgeml.errors import unknown_name

        raise unknown_name("time column", time_column, table.column_names, "backtest")
    times = table[time_column].to_pandas()
    temporal = pd.api.types.is_datetime64_any_dtype(times)
    width = pd.Timedelta(window) if temporal else float(window)
    stride = (pd.Timedelta(step) if temporal else float(step)) if step is not None else width
    if stride <= (pd.Timedelta(0) if temporal else 0):
        raise ValidationError("backtest step and window must be positive")
    predictor = None
    if train is None:
        predictor = load_for_evaluation(model, ws)[0]
    out = []
    start, last = times.min(), times.max()
    while start <= last:
        end = start + width
        mask = np.asarray((times >= start) & (times < end))
        if mask.sum() >= min_rows:
            part = table.filter(pa.array(mask))
            train_rows = None
            current = predictor
            if train is not None:
                history = table.filter(pa.array(np.asarray(times < start)))
                train_rows = history.num_rows
                if train_rows == 0:
                    start = start + stride
                    continue
                current = train(history)
            p = predict(current, part, target, task)
            out.append(BacktestWindow(start, end, int(mask.sum()), score(p), train_rows))
        start = start + stride
    return out
