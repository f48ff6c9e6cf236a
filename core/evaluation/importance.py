"""Global feature importance at evaluation: mean |SHAP| and permutation importance, champion vs challenger."""

from __future__ import annotations

from typing import Any

from forgeml.errors import ValidationError

SHAP_ROWS = 1_000  # rows attributed for mean |SHAP|: enough for a stable mean, cheap for any explainer
PERMUTATION_ROWS = 5_000
PERMUTATION_REPEATS = 5


def primary_metric(task: str, binary: bool) -> tuple[str, bool]:
    """Return the metric permutation importance watches for a task, and whether higher is better."""
    if task == "regression":
        return "rmse", False
    return ("roc_auc", True) if binary else ("accuracy", True)


def _sample(n: int, size: int, seed: int) -> Any:
    import numpy as np

    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def mean_abs_shap(predictor: Any, table: Any, workspace: Any, rows: int = SHAP_ROWS, seed: int = 0) -> dict[str, Any]:
    """Return each feature's mean absolute attribution over a sample of the table's rows."""
    import numpy as np

    from forgeml.explain.attributions import explainer_for

    explainer = explainer_for(predictor, workspace)
    idx = _sample(table.num_rows, rows, seed)
    att = explainer.explain(table.take(idx).select(explainer.features))
    return {"method": explainer.method, "rows": len(idx),
            "values": dict(zip(explainer.features, np.abs(att.values).mean(axis=0).tolist()))}


def permutation_scores(predictor: Any, table: Any, target: str, task: str, features: list[str],
                       threshold: float = 0.5, rows: int = PERMUTATION_ROWS, repeats: int = PERMUTATION_REPEATS,
                       seed: int = 0) -> dict[str, Any]:
    """Return how much the primary metric worsens when each feature's values are shuffled (sklearn's method)."""
    import numpy as np
    from sklearn.inspection import permutation_importance

    from forgeml.evaluation.evaluate import predict, score

    idx = _sample(table.num_rows, rows, seed)
    sample = table.take(idx)
    frame = sample.select(features).to_pandas()
    base = predict(predictor, sample, target, task, threshold=threshold)
    metric, higher = primary_metric(base.task, base.proba is not None and np.ndim(base.proba) == 1)
    y = sample[target]

    def scorer(_: Any, x: Any, __: Any) -> float:
        import pyarrow as pa

        shuffled = pa.Table.from_pandas(x, preserve_index=False).append_column(target, y)
        value = score(predict(predictor, shuffled, target, task, threshold=threshold)).get(metric)
        if value is None:
            raise ValidationError(f"permutation importance: {metric} is undefined on this data")
        return float(value) if higher else -float(value)

    result = permutation_importance(_Fitted(), frame, np.zeros(len(frame)), scoring=scorer, n_repeats=repeats,
                                    random_state=seed, n_jobs=1)
    return {"metric": metric, "rows": len(idx), "repeats": repeats,
            "values": dict(zip(features, result.importances_mean.tolist())),
            "std": dict(zip(features, result.importances_std.tolist()))}


class _Fitted:
    """A stand-in estimator: sklearn's permutation_importance only hands it to the scorer."""

    def fit(self, *args: Any) -> _Fitted:
        """Nothing to fit: the model under evaluation is already trained."""
        return self


def global_importance(predictor: Any, table: Any, target: str, task: str, workspace: Any,
                      threshold: float = 0.5) -> dict[str, Any]:
    """Return mean |SHAP| and permutation importance per feature, features ordered by mean |SHAP|."""
    from forgeml.explain.attributions import explainer_for

    if task == "ranking":
        raise ValidationError("importance is computed for classification and regression, not ranking")
    features = explainer_for(predictor, workspace).features
    missing = [f for f in features if f not in table.column_names]
    if missing:
        raise ValidationError(f"importance needs the model's features; the table lacks {', '.join(missing)}")
    shap_part = mean_abs_shap(predictor, table, workspace)
    perm = permutation_scores(predictor, table, target, task, features, threshold)
    order = sorted(features, key=lambda f: -shap_part["values"][f])
    return {
        "shap_method": shap_part["method"], "shap_rows": shap_part["rows"], "metric": perm["metric"],
        "permutation_rows": perm["rows"], "repeats": perm["repeats"],
        "features": [{"feature": f, "mean_abs_shap": shap_part["values"][f],
                      "permutation": perm["values"][f], "permutation_std": perm["std"][f]} for f in order],
    }


def compare_importance(champion: list[dict[str, Any]], challenger: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Line up two importance tables by feature: values, ranks and the rank each model gives it."""
    rank_a = {row["feature"]: i + 1 for i, row in enumerate(champion)}
    rank_b = {row["feature"]: i + 1 for i, row in enumerate(challenger)}
    a = {row["feature"]: row for row in champion}
    b = {row["feature"]: row for row in challenger}
    out = []
    for feature in sorted(set(a) | set(b), key=lambda f: min(rank_a.get(f, 1e9), rank_b.get(f, 1e9))):
        out.append({"feature": feature,
                    "champion_mean_abs_shap": a.get(feature, {}).get("mean_abs_shap"),
                    "challenger_mean_abs_shap": b.get(feature, {}).get("mean_abs_shap"),
                    "champion_permutation": a.get(feature, {}).get("permutation"),
                    "challenger_permutation": b.get(feature, {}).get("permutation"),
                    "champion_rank": rank_a.get(feature), "challenger_rank": rank_b.get(feature)})
    return out
