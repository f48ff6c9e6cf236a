"""Evaluate a model on a dataset version: overall metrics, per-slice metrics and fairness by group."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from forgeml.errors import ValidationError
from forgeml.evaluation.metrics import (
    classification_metrics,
    ranking_metrics,
    regression_metrics,
)

TASKS = ("classification", "regression", "ranking")
MAX_SLICE_VALUES = 50


@dataclass
class Predictions:
    """A model's outputs on a table, aligned with the true values."""

    task: str
    y_true: Any
    y_pred: Any
    proba: Any | None = None
    classes: list[Any] = field(default_factory=list)
    query: Any | None = None


@dataclass
class EvaluationResult:
    """Metrics of one model on one dataset: overall, per slice and fairness by group."""

    model: str
    dataset: str
    target: str
    task: str
    rows: int
    metrics: dict[str, float | None]
    slices: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fairness: dict[str, dict[str, Any]] = field(default_factory=dict)
    importance: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    robustness: dict[str, Any] = field(default_factory=dict)
    weak_slices: list[dict[str, Any]] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return plain values for JSON output."""
        return asdict(self)


def _workspace(workspace: Any) -> Any:
    if workspace is not None:
        return workspace
    from forgeml.workspace import current

    return current()


def load_for_evaluation(model: Any, ws: Any) -> tuple[Any, str, Any]:
    """Return (predictor, label, ModelVersion or None) for a URI, a ModelVersion or a model object."""
    from forgeml.registry.models import ModelVersion, load_model, resolve

    if isinstance(model, str):
        mv = resolve(model, workspace=ws)
        return load_model(mv, workspace=ws), mv.uri, mv
    if isinstance(model, ModelVersion):
        return load_model(model, workspace=ws), model.uri, model
    if hasattr(model, "predict"):
        mv = getattr(model, "model_version", None)
        return model, (mv.uri if mv is not None else type(model).__name__), mv
    raise ValidationError(f"cannot evaluate {type(model).__name__}; give a model URI (name@version) or a model")


def load_table(dataset: Any, ws: Any) -> tuple[Any, str]:
    """Return (Arrow table, label) for a dataset reference, DatasetVersion, Arrow table or DataFrame."""
    import pyarrow as pa

    from forgeml.datasets.sources import table_digest
    from forgeml.datasets.versions import DatasetVersion, get_dataset_version, read_dataset

    if isinstance(dataset, str | DatasetVersion):
        dv = dataset if isinstance(dataset, DatasetVersion) else get_dataset_version(dataset, workspace=ws)
        return read_dataset(dv, workspace=ws), dv.ref
    if type(dataset).__name__ == "DataFrame":
        dataset = pa.Table.from_pandas(dataset, preserve_index=False)
    if isinstance(dataset, pa.Table):
        return dataset, f"table:{table_digest(dataset)[:12]}"
    raise ValidationError(f"cannot evaluate on {type(dataset).__name__}; give a dataset reference or a table")


def infer_task(y: Any) -> str:
    """Guess classification (few distinct labels, or non-float) or regression from the target values."""
    import numpy as np

    if y.dtype.kind in "OUSb" or (y.dtype.kind in "iu" and len(np.unique(y)) <= 20):
        return "classification"
    return "regression"


def _features(predictor: Any, table: Any, target: str, extra: tuple[str, ...]) -> Any:
    columns = getattr(getattr(predictor, "_matrix", None), "columns", None) or getattr(predictor, "columns", None)
    if columns:
        return table
    return table.drop_columns([c for c in (target, *extra) if c in table.column_names])


def predict(predictor: Any, table: Any, target: str, task: str | None = None, query_column: str | None = None,
            threshold: float = 0.5, exclude: tuple[str, ...] = ()) -> Predictions:
    """Run a model on a table and align its outputs with the target column."""
    import numpy as np

    if target not in table.column_names:
        from forgeml.errors import unknown_name

        raise unknown_name("target column", target, table.column_names, "evaluate --target")
    if table.num_rows == 0:
        raise ValidationError("cannot evaluate on an empty table")
    y = table[target].to_numpy(zero_copy_only=False)
    task = task or ("ranking" if query_column else infer_task(y))
    if task not in TASKS:
        from forgeml.errors import unknown_name

        raise unknown_name("task", task, TASKS)
    extra = tuple(c for c in (query_column, *exclude) if c)
    x = _features(predictor, table, target, extra)
    if task == "ranking":
        if not query_column or query_column not in table.column_names:
            raise ValidationError("ranking needs query_column= naming the column that groups rows into queries")
        scores = np.asarray(predictor.predict(x), dtype=float).reshape(len(y), -1)[:, -1]
        return Predictions(task, y.astype(float), scores, query=table[query_column].to_numpy(zero_copy_only=False))
    if task == "regression":
        return Predictions(task, y.astype(float), np.asarray(predictor.predict(x), dtype=float).reshape(len(y)))
    proba, classes = None, None
    if hasattr(predictor, "predict_proba"):
        try:
            proba = np.asarray(predictor.predict_proba(x), dtype=float)
        except ValidationError:  # e.g. an SVC without probability=True: fall back to its predictions
            proba = None
        else:
            model = getattr(predictor, "model", predictor)
            classes = list(getattr(model, "classes_", range(proba.shape[1])))
    if proba is None:
        out = np.asarray(predictor.predict(x))
        if out.dtype.kind == "f" and not np.all(np.mod(out, 1) == 0):
            if out.ndim == 2 and out.shape[1] > 1:
                if out.min() < 0 or not np.allclose(out.sum(axis=1), 1, atol=1e-3):  # logits: softmax
                    e = np.exp(out - out.max(axis=1, keepdims=True))
                    out = e / e.sum(axis=1, keepdims=True)
                proba = out
            else:
                out = out.reshape(len(y))
                if out.min() < 0 or out.max() > 1:  # logits: sigmoid
                    out = 1 / (1 + np.exp(-out))
                proba = np.column_stack([1 - out, out])
        else:
            labels = out.reshape(len(y))
            classes = sorted(set(np.unique(y).tolist()) | set(np.unique(labels).tolist()))
            index = {c: i for i, c in enumerate(classes)}
            return Predictions(task, np.array([index[v] for v in y.tolist()]),
                               np.array([index[v] for v in labels.tolist()]), None, classes)
    if classes is None:
        seen = sorted(np.unique(y).tolist())
        classes = seen if len(seen) == proba.shape[1] else list(range(proba.shape[1]))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({v for v in np.unique(y).tolist() if v not in index}, key=str)
    if unknown:
        raise ValidationError(f"target {target!r} has labels the model does not know: {unknown[:5]}; "
                              f"model classes: {classes}")
    y_idx = np.array([index[v] for v in y.tolist()])
    if proba.shape[1] == 2:
        y_pred = (proba[:, 1] >= threshold).astype(int)
        return Predictions(task, y_idx, y_pred, proba[:, 1], classes)
    return Predictions(task, y_idx, proba.argmax(axis=1), proba, classes)


def score(p: Predictions, mask: Any = None, k: int = 10) -> dict[str, float | None]:
    """Compute the task's metrics over all rows or the rows in mask."""
    def sel(a: Any) -> Any:
        return a if mask is None or a is None else a[mask]

    if p.task == "classification":
        return classification_metrics(sel(p.y_true), sel(p.y_pred), sel(p.proba))
    if p.task == "regression":
        return regression_metrics(sel(p.y_true), sel(p.y_pred))
    return ranking_metrics(sel(p.query), sel(p.y_true), sel(p.y_pred), k=k)


def _slice_masks(table: Any, column: str) -> list[tuple[Any, Any]]:
    """Return (value, mask) per slice of a column; many-valued numeric columns are cut into quartiles."""
    import numpy as np

    if column not in table.column_names:
        from forgeml.errors import unknown_name

        raise unknown_name("slice column", column, table.column_names, "evaluate --slice")
    values = table[column].to_numpy(zero_copy_only=False)
    uniq, counts = np.unique(values.astype(str) if values.dtype.kind == "O" else values, return_counts=True)
    if values.dtype.kind in "fiu" and len(uniq) > 20:
        edges = np.unique(np.quantile(values, [0, 0.25, 0.5, 0.75, 1.0]))
        bins = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
        return [(f"[{edges[b]:.4g}, {edges[b + 1]:.4g}{']' if b == len(edges) - 2 else ')'}", bins == b)
                for b in range(len(edges) - 1)]
    keyed = values.astype(str) if values.dtype.kind == "O" else values
    top = uniq[np.argsort(-counts, kind="stable")][:MAX_SLICE_VALUES]
    return [(v.item() if hasattr(v, "item") else v, keyed == v) for v in top]


def evaluate(model: Any, dataset: Any, target: str, *, task: str | None = None, slices: list[str] | tuple = (),
             fairness: list[str] | tuple = (), k: int = 10, query_column: str | None = None,
             threshold: float = 0.5, importance: bool = False, robustness: bool = False,
             find_slices: bool = False, plots: bool = False, store: bool = True,
             workspace: Any = None) -> EvaluationResult:
    """Evaluate a model (``name@version`` or object) on a dataset (``name@v3`` or table), stored with the version.

    Binary classifiers also get a calibration report. ``importance`` adds mean |SHAP| and permutation
    importance; ``robustness`` metrics under perturbed inputs; ``find_slices`` the worst slices over
    every feature column; ``plots`` PNG and SVG charts stored as artifacts (digests in ``plots``).
    """
    ws = _workspace(workspace)
    predictor, model_label, mv = load_for_evaluation(model, ws)
    table, data_label = load_table(dataset, ws)
    preds = predict(predictor, table, target, task, query_column, threshold)
    result = EvaluationResult(model_label, data_label, target, preds.task, table.num_rows, score(preds, k=k))
    for column in slices:
        result.slices[column] = [
            {"value": value, "rows": int(mask.sum()), "metrics": score(preds, mask, k=k)}
            for value, mask in _slice_masks(table, column)
        ]
    if fairness:
        from forgeml.evaluation.fairness import fairness_report

        for column in fairness:
            result.fairness[column] = fairness_report(preds, table, column)
    if preds.task == "classification" and preds.proba is not None and preds.proba.ndim == 1:
        from forgeml.evaluation.calibration import calibration_report

        result.calibration = calibration_report(preds.y_true, preds.proba)
    if importance:
        from forgeml.evaluation.importance import global_importance

        result.importance = global_importance(predictor, table, target, preds.task, ws, threshold)
    if robustness or find_slices:
        _responsible(result, predictor, table, preds, robustness, find_slices, (query_column, *fairness), threshold)
    if plots:
        from forgeml.evaluation.plots import store_plots

        result.plots = store_plots(result, ws)
    if store and mv is not None:
        from forgeml.registry.evaluations import record_evaluation

        result.id = record_evaluation(mv.name, mv.version, data_label, target, preds.task, result.metrics,
                                      result.to_dict(), workspace=ws)
    return result


def _responsible(result: EvaluationResult, predictor: Any, table: Any, preds: Predictions, robustness: bool,
                 find_slices: bool, exclude: tuple[Any, ...], threshold: float) -> None:
    """Fill the robustness report and the worst slices (over the feature columns) of a result."""
    from forgeml.evaluation.robustness import find_weak_slices, robustness_report

    features = [c for c in table.column_names if c != result.target and c not in exclude]
    if robustness:
        result.robustness = robustness_report(predictor, table, result.target, preds.task, features,
                                              threshold=threshold)
    if find_slices:
        result.weak_slices = find_weak_slices(preds, table, features)
