"""Robustness and slices: metrics under perturbed inputs, and an automatic finder of the worst slices.

Perturbations (seeded, on a copy of the evaluation rows): ``noise`` adds Gaussian noise of
``noise_scale`` standard deviations to every numeric feature; ``missing`` blanks ``fraction`` of the
numeric values; ``swap`` replaces ``fraction`` of each categorical column's values with another
category of that column. The slice finder scores each row's loss, then every single-column slice and
every pair of them, and reports the slices whose loss is worst relative to the rest (a Welch t
statistic, as in SliceFinder), with at least ``min_rows`` rows.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from forgeml.errors import ForgeError, ValidationError

PERTURBATIONS = ("noise", "missing", "swap")


def _perturb(table: Any, features: list[str], kind: str, fraction: float, noise_scale: float, seed: int) -> Any:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    out = table
    for name in features:
        col = table[name].to_numpy(zero_copy_only=False)
        numeric = col.dtype.kind in "fiu"
        if kind == "noise" and numeric:
            std = float(np.nanstd(col.astype(float))) or 1.0
            new = col.astype(float) + rng.normal(scale=noise_scale * std, size=len(col))
        elif kind == "missing" and numeric:
            new = col.astype(float).copy()
            new[rng.random(len(col)) < fraction] = np.nan
        elif kind == "swap" and not numeric:
            values = np.unique(col.astype(str))
            if len(values) < 2:
                continue
            new = col.astype(object).copy()
            for i in np.flatnonzero(rng.random(len(col)) < fraction):
                others = values[values != str(new[i])]
                new[i] = others[rng.integers(len(others))]
        else:
            continue
        out = out.set_column(out.column_names.index(name), name, pa.array(new))
    return out


def robustness_report(predictor: Any, table: Any, target: str, task: str, features: list[str],
                      perturbations: tuple[str, ...] = PERTURBATIONS, fraction: float = 0.1,
                      noise_scale: float = 0.1, threshold: float = 0.5, seed: int = 0) -> dict[str, Any]:
    """Return the task's metrics under each perturbation beside the clean ones, and each metric's change."""
    from forgeml.evaluation.evaluate import predict, score

    unknown = [p for p in perturbations if p not in PERTURBATIONS]
    if unknown:
        from forgeml.errors import unknown_name

        raise unknown_name("perturbation", unknown[0], PERTURBATIONS)
    clean = score(predict(predictor, table, target, task, threshold=threshold))
    out: dict[str, Any] = {"clean": clean, "fraction": fraction, "noise_scale": noise_scale, "perturbations": {}}
    for i, kind in enumerate(perturbations):
        changed = _perturb(table, features, kind, fraction, noise_scale, seed + i)
        if changed is table:
            out["perturbations"][kind] = {"skipped": f"no {'categorical' if kind == 'swap' else 'numeric'} features"}
            continue
        try:
            metrics = score(predict(predictor, changed, target, task, threshold=threshold))
        except (ForgeError, ValueError, TypeError) as e:  # e.g. an estimator that cannot take missing values
            out["perturbations"][kind] = {"error": f"the model failed on {kind} inputs: {e}"[:300]}
            continue
        out["perturbations"][kind] = {
            "metrics": metrics,
            "change": {m: (None if metrics.get(m) is None or v is None else metrics[m] - v) for m, v in clean.items()},
        }
    return out


# ------------------------------------------------------------------ slice finder
def row_losses(p: Any) -> Any:
    """Per-row loss: log loss for scored classifiers, 0/1 error for labels, squared error for regression."""
    import numpy as np

    if p.task == "regression":
        return (p.y_true - p.y_pred) ** 2
    if p.proba is None:
        return (p.y_true != p.y_pred).astype(float)
    if np.ndim(p.proba) == 1:
        chosen = np.where(p.y_true == 1, p.proba, 1 - p.proba)
    else:
        chosen = p.proba[np.arange(len(p.y_true)), p.y_true]
    return -np.log(np.clip(chosen, 1e-12, 1.0))


def _candidates(table: Any, columns: list[str]) -> list[tuple[str, Any, Any]]:
    """(description, mask) per single-column slice: each category, or each quartile of a number."""
    from forgeml.evaluation.evaluate import _slice_masks

    out = []
    for column in columns:
        for value, mask in _slice_masks(table, column):
            out.append((f"{column} = {value}" if not str(value).startswith("[") else f"{column} in {value}", mask))
    return out


def find_weak_slices(p: Any, table: Any, columns: list[str], min_rows: int = 30, top: int = 5,
                     max_depth: int = 2) -> list[dict[str, Any]]:
    """Return the slices (one column or a pair) whose mean loss most exceeds the rest's, worst first."""
    import numpy as np

    if max_depth not in (1, 2):
        raise ValidationError(f"max_depth is 1 or 2, got {max_depth}")
    loss = row_losses(p)
    overall = float(loss.mean())
    singles = _candidates(table, columns)
    found = []
    pairs = combinations(range(len(singles)), 2) if max_depth == 2 else ()
    for parts, mask in ([((d,), m) for d, m in singles]
                        + [((singles[a][0], singles[b][0]), singles[a][1] & singles[b][1]) for a, b in pairs
                           if singles[a][0].split(" ")[0] != singles[b][0].split(" ")[0]]):
        n = int(mask.sum())
        if n < min_rows or n > len(loss) - min_rows:
            continue
        inside, outside = loss[mask], loss[~mask]
        gap = float(inside.mean() - outside.mean())
        if gap <= 0:
            continue
        se = float(np.sqrt(inside.var(ddof=1) / n + outside.var(ddof=1) / len(outside))) or 1e-12
        found.append({"slice": " and ".join(parts), "rows": n, "mean_loss": float(inside.mean()),
                      "overall_loss": overall, "gap": gap, "t": gap / se})
    found.sort(key=lambda s: -s["t"])
    # a pair is worth reporting only when it is worse than each of its own columns alone
    best = {s["slice"]: s["t"] for s in found if " and " not in s["slice"]}
    kept = [s for s in found if " and " not in s["slice"]
            or all(s["t"] > best.get(part, 0.0) for part in s["slice"].split(" and "))]
    return kept[:top]
