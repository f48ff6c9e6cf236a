"""Group fairness with fairlearn: parity, equalized odds, equal opportunity, per-group calibration and confusion."""

from __future__ import annotations

from typing import Any

from forgeml.errors import ValidationError


def _rate(num: int, den: int) -> float | None:
    return float(num) / den if den else None


def fairness_report(p: Any, table: Any, column: str) -> dict[str, Any]:
    """Fairness of a binary classifier's decisions across the groups of a sensitive column.

    Gaps are fairlearn's (largest minus smallest group value; ratios smallest over largest). Each group
    carries its confusion counts, rates, accuracy, and its calibration (ECE, Brier) when scores exist.
    Many-valued numeric columns are cut into quartiles, as for slices.
    """
    import numpy as np

    from forgeml.evaluation.evaluate import _slice_masks
    from forgeml.evaluation.metrics import expected_calibration_error
    from forgeml.explain.attributions import optional

    if p.task != "classification" or (p.proba is not None and np.ndim(p.proba) == 2) or len(p.classes) > 2:
        raise ValidationError(f"fairness by {column!r} needs a binary classification task")
    fm = optional("fairlearn.metrics")
    masks = _slice_masks(table, column)
    labels = np.empty(len(p.y_true), dtype=object)
    for value, mask in masks:
        labels[mask] = str(value)
    covered = np.array([v is not None for v in labels])
    y, yhat, groups = p.y_true[covered], p.y_pred[covered], labels[covered]
    entries = []
    for value, mask in masks:
        m = mask[covered]
        t, d = y[m] == 1, yhat[m] == 1
        tp, fp, fn, tn = int(np.sum(t & d)), int(np.sum(~t & d)), int(np.sum(t & ~d)), int(np.sum(~t & ~d))
        entry: dict[str, Any] = {
            "group": value, "rows": int(m.sum()), "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
            "selection_rate": _rate(tp + fp, int(m.sum())), "true_positive_rate": _rate(tp, tp + fn),
            "false_positive_rate": _rate(fp, fp + tn), "positive_rate": _rate(tp + fn, int(m.sum())),
            "accuracy": _rate(tp + tn, int(m.sum())),
        }
        if p.proba is not None:
            scores = p.proba[covered][m]
            entry["mean_score"] = float(np.mean(scores))
            entry["ece"] = expected_calibration_error(y[m], scores)
            entry["brier"] = float(np.mean((scores - y[m]) ** 2))
        entries.append(entry)
    kwargs = {"sensitive_features": groups}
    eces = [g["ece"] for g in entries if g.get("ece") is not None]
    return {
        "groups": entries,
        "demographic_parity_difference": float(fm.demographic_parity_difference(y, yhat, **kwargs)),
        "demographic_parity_ratio": float(fm.demographic_parity_ratio(y, yhat, **kwargs)),
        "equalized_odds_difference": _finite(fm.equalized_odds_difference(y, yhat, **kwargs)),
        "equal_opportunity_difference": _finite(fm.equal_opportunity_difference(y, yhat, **kwargs)),
        "calibration_gap": float(max(eces) - min(eces)) if eces else None,
    }


def _finite(value: Any) -> float | None:
    import math

    value = float(value)
    return None if math.isnan(value) else value
