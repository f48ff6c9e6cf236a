"""Metric families on numpy arrays, built on scikit-learn's metrics."""

from __future__ import annotations

from typing import Any

HIGHER_IS_BETTER = {"accuracy": True, "precision": True, "recall": True, "f1": True, "roc_auc": True,
                    "pr_auc": True, "log_loss": False, "ece": False, "rmse": False, "mae": False, "r2": True,
                    "map": True, "mrr": True}


def higher_is_better(metric: str) -> bool:
    """Return whether larger values of a metric are better (ndcg@k and hit_rate@k included)."""
    return HIGHER_IS_BETTER.get(metric.split("@")[0], True)


def expected_calibration_error(y_true: Any, proba: Any, bins: int = 10) -> float:
    """Return the ECE: the bin-weighted gap between confidence and accuracy (equal-width bins)."""
    import numpy as np

    proba = np.asarray(proba, dtype=float)
    y_true = np.asarray(y_true)
    if proba.ndim == 1:  # binary: confidence of the positive class against the positive rate
        conf, correct = proba, (y_true == 1).astype(float)
    else:
        conf, correct = proba.max(axis=1), (proba.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(conf[mask].mean() - correct[mask].mean())
    return float(total)


def _safe(fn: Any, *args: Any, **kwargs: Any) -> float | None:
    """Return a metric, or None where it is undefined on this data (e.g. ROC-AUC with one class)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = float(fn(*args, **kwargs))
        except ValueError:
            return None
    import math

    return None if math.isnan(value) else value


def classification_metrics(y_true: Any, y_pred: Any, proba: Any | None) -> dict[str, float | None]:
    """Accuracy, precision, recall, F1, and with probabilities ROC-AUC, PR-AUC, log loss and ECE.

    ``y_true``/``y_pred`` hold class indices (0..K-1); ``proba`` is (n,) for binary or (n, K).
    """
    import numpy as np
    from sklearn import metrics as m

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    k = int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
    if proba is not None:
        proba = np.asarray(proba, dtype=float)
        k = max(k, proba.shape[1] if proba.ndim == 2 else 2)
    binary = k <= 2
    avg = "binary" if binary else "macro"
    out: dict[str, float | None] = {
        "accuracy": _safe(m.accuracy_score, y_true, y_pred),
        "precision": _safe(m.precision_score, y_true, y_pred, average=avg, zero_division=0),
        "recall": _safe(m.recall_score, y_true, y_pred, average=avg, zero_division=0),
        "f1": _safe(m.f1_score, y_true, y_pred, average=avg, zero_division=0),
    }
    if proba is not None:
        labels = list(range(k))
        if binary:
            pos = proba[:, 1] if proba.ndim == 2 else proba
            out["roc_auc"] = _safe(m.roc_auc_score, y_true, pos)
            out["pr_auc"] = _safe(m.average_precision_score, y_true, pos)
            out["log_loss"] = _safe(m.log_loss, y_true, pos, labels=[0, 1])
            out["ece"] = expected_calibration_error(y_true, pos)
        else:
            out["roc_auc"] = _safe(m.roc_auc_score, y_true, proba, multi_class="ovr", labels=labels)
            onehot = np.eye(k)[y_true]
            out["pr_auc"] = _safe(m.average_precision_score, onehot, proba, average="macro")
            out["log_loss"] = _safe(m.log_loss, y_true, proba, labels=labels)
            out["ece"] = expected_calibration_error(y_true, proba)
    return out


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float | None]:
    """RMSE, MAE and R²."""
    import numpy as np
    from sklearn import metrics as m

    return {"rmse": _safe(lambda a, b: np.sqrt(m.mean_squared_error(a, b)), y_true, y_pred),
            "mae": _safe(m.mean_absolute_error, y_true, y_pred),
            "r2": _safe(m.r2_score, y_true, y_pred)}


def ranking_metrics(query: Any, relevance: Any, scores: Any, k: int = 10) -> dict[str, float | None]:
    """NDCG@k, MAP, MRR and hit rate@k, averaged over queries (relevance > 0 counts as relevant)."""
    import numpy as np
    from sklearn import metrics as m

    query, relevance, scores = np.asarray(query), np.asarray(relevance, dtype=float), np.asarray(scores, dtype=float)
    order = np.argsort(query, kind="stable")
    bounds = np.flatnonzero(np.diff(query[order])) + 1
    ndcg, ap, rr, hit = [], [], [], []
    for idx in np.split(order, bounds):
        rel, sc = relevance[idx], scores[idx]
        ranked = rel[np.argsort(-sc, kind="stable")] > 0
        if len(idx) > 1:
            ndcg.append(m.ndcg_score(rel[None, :], sc[None, :], k=k))
        elif rel[0] > 0:
            ndcg.append(1.0)
        else:
            ndcg.append(0.0)
        if ranked.any():
            ap.append(m.average_precision_score(rel > 0, sc) if len(idx) > 1 else 1.0)
            rr.append(1.0 / (int(np.argmax(ranked)) + 1))
        else:
            rr.append(0.0)
        hit.append(float(ranked[:k].any()))
    return {f"ndcg@{k}": _mean(ndcg), "map": _mean(ap), "mrr": _mean(rr), f"hit_rate@{k}": _mean(hit)}


def _mean(values: list[float]) -> float | None:
    import numpy as np

    return float(np.mean(values)) if values else None
