"""Label quality: agreement between annotators, accuracy on gold items, votes, and likely label errors.

Cohen's kappa comes from scikit-learn, Fleiss' kappa from statsmodels, Krippendorff's alpha from the
``krippendorff`` package and label-error detection (confident learning) from cleanlab; the last three
are in the ``labeling`` extra (``pip install 'forgeml[labeling]'``).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from forgeml.errors import ValidationError
from forgeml.labeling.labelsets import LabelRecord, get_label_set, get_labels, majority, workspace_or_current


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ValidationError(f"{module} is not installed: pip install 'forgeml[labeling]'") from e


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa between two annotators' labels of the same items."""
    from sklearn.metrics import cohen_kappa_score

    if len(a) != len(b) or not a:
        raise ValidationError(f"Cohen's kappa needs two equally long, non-empty label lists, got {len(a)} and {len(b)}")
    if len(set(a) | set(b)) == 1:
        return 1.0  # both gave every item the same single class: perfect, though sklearn says nan
    return float(cohen_kappa_score(list(map(str, a)), list(map(str, b))))


def fleiss_kappa(ratings: Sequence[Sequence[Any]]) -> float:
    """Fleiss' kappa of items x raters labels (every item rated by the same number of raters)."""
    import numpy as np

    inter_rater = _require("statsmodels.stats.inter_rater")
    if not ratings or len({len(r) for r in ratings}) != 1 or len(ratings[0]) < 2:
        raise ValidationError("Fleiss' kappa needs every item rated by the same number (>= 2) of raters")
    codes = {v: i for i, v in enumerate(sorted({str(x) for row in ratings for x in row}))}
    table, _ = inter_rater.aggregate_raters(np.array([[codes[str(x)] for x in row] for row in ratings]),
                                            n_cat=len(codes))
    return float(inter_rater.fleiss_kappa(table, method="fleiss"))


def krippendorff_alpha(ratings: Sequence[Sequence[Any]]) -> float:
    """Krippendorff's alpha (nominal) of raters x items labels, None where a rater did not label an item."""
    import numpy as np

    kd = _require("krippendorff")
    codes = {v: i for i, v in enumerate(sorted({str(x) for row in ratings for x in row if x is not None}))}
    data = np.array([[np.nan if x is None else codes[str(x)] for x in row] for row in ratings], dtype=float)
    if len(codes) < 2:
        return 1.0
    return float(kd.alpha(reliability_data=data, level_of_measurement="nominal"))


def _by_annotator(records: Sequence[LabelRecord]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for r in records:
        if r.source_kind == "annotator":
            out[r.source][r.key] = r.label
    return out


def agreement(label_set: str, workspace: Any = None) -> dict[str, Any]:
    """Agreement between a label set's annotators: Cohen's kappa per pair, Fleiss' kappa, Krippendorff's alpha."""
    ws = workspace_or_current(workspace)
    people = _by_annotator(get_labels(label_set, kinds=["annotator"], workspace=ws))
    names = sorted(people)
    if len(names) < 2:
        raise ValidationError(f"label set {label_set!r} has {len(names)} annotator(s); agreement needs two or more")
    pairs = []
    for a, b in itertools.combinations(names, 2):
        common = sorted(set(people[a]) & set(people[b]))
        if common:
            pairs.append({"annotators": [a, b], "items": len(common),
                          "cohen_kappa": cohen_kappa([people[a][k] for k in common], [people[b][k] for k in common])})
    items = sorted({k for labels in people.values() for k in labels})
    per_item = {k: [people[n][k] for n in names if k in people[n]] for k in items}
    counts = [len(v) for v in per_item.values() if len(v) >= 2]
    fleiss = None
    if counts:
        raters = max(set(counts), key=lambda c: (counts.count(c), c))  # the most common number of raters per item
        rows = [v for v in per_item.values() if len(v) == raters]
        fleiss = {"items": len(rows), "raters": raters, "kappa": fleiss_kappa(rows)}
    alpha = krippendorff_alpha([[people[n].get(k) for k in items] for n in names])
    return {"label_set": label_set, "annotators": names, "items": len(items), "pairs": pairs,
            "fleiss": fleiss, "krippendorff_alpha": alpha}


def gold_accuracy(label_set: str, workspace: Any = None) -> dict[str, dict[str, Any]]:
    """Each annotator's accuracy on the gold items they labelled."""
    ws = workspace_or_current(workspace)
    recs = get_labels(label_set, kinds=["annotator", "gold"], workspace=ws)
    gold = {r.key: r.label for r in recs if r.source_kind == "gold"}
    if not gold:
        raise ValidationError(f"label set {label_set!r} has no gold items; add some with source_kind='gold'")
    out = {}
    for name, labels in sorted(_by_annotator(recs).items()):
        seen = [k for k in labels if k in gold]
        right = sum(labels[k] == gold[k] for k in seen)
        out[name] = {"gold_items": len(seen), "correct": right, "accuracy": right / len(seen) if seen else None}
    return out


def annotator_weights(label_set: str, workspace: Any = None) -> dict[str, float]:
    """Vote weights from gold accuracy: log((K-1)·acc / (1-acc)), the optimal weights when errors are uniform."""
    ws = workspace_or_current(workspace)
    k = len(get_label_set(label_set, workspace=ws).classes)
    out = {}
    for name, entry in gold_accuracy(label_set, workspace=ws).items():
        if entry["accuracy"] is None:
            continue
        # Laplace smoothing keeps a perfect (or hopeless) record on a few gold items from an infinite weight
        acc = (entry["correct"] + 1) / (entry["gold_items"] + 2)
        out[name] = max(math.log((k - 1) * acc / (1 - acc)), 0.0)
    return out


def vote(label_set: str, weighted: bool = False, workspace: Any = None) -> dict[str, tuple[str, float]]:
    """Each item's majority (or gold-accuracy-weighted) annotator label and its share of the vote."""
    ws = workspace_or_current(workspace)
    weights: Mapping[str, float] = annotator_weights(label_set, workspace=ws) if weighted else {}
    votes: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for r in get_labels(label_set, kinds=["annotator"], workspace=ws):
        votes[r.key].append((r.label, weights.get(r.source, 1.0) if weighted else 1.0))
    return {k: majority([lab for lab, _ in v], [w for _, w in v]) for k, v in votes.items()}


def label_errors(label_set: str, dataset: str | None = None, *, features: Sequence[str] | None = None,
                 pred_probs: Any = None, folds: int = 5, workspace: Any = None) -> list[dict[str, Any]]:
    """Items whose label looks wrong by confident learning (cleanlab), most suspicious first.

    Without ``pred_probs``, out-of-fold probabilities come from a logistic regression over the numeric
    ``features`` (default: every numeric column but the key) of the dataset's labelled rows.
    """
    import numpy as np

    from forgeml.datasets.versions import get_dataset_version, read_dataset
    from forgeml.labeling.labelsets import resolve

    filt = _require("cleanlab.filter")
    ws = workspace_or_current(workspace)
    ls = get_label_set(label_set, workspace=ws)
    resolved = resolve(get_labels(ls.name, workspace=ws))
    dv = get_dataset_version(dataset or ls.dataset, workspace=ws)
    table = read_dataset(dv, workspace=ws)
    keys = [str(k) for k in table[ls.key].to_pylist()]
    rows = [i for i, k in enumerate(keys) if k in resolved]
    if len(rows) < folds * 2:
        raise ValidationError(f"label set {ls.name!r} has {len(rows)} labelled rows of {dv.ref}; "
                              f"label-error detection needs at least {folds * 2}")
    index = {c: i for i, c in enumerate(ls.classes)}
    labels = np.array([index[resolved[keys[i]].label] for i in rows])
    if pred_probs is None:
        pred_probs = _out_of_fold(table.take(rows), ls.key, features, labels, folds)
    pred_probs = np.asarray(pred_probs, dtype=float)
    if pred_probs.shape != (len(rows), len(ls.classes)):
        raise ValidationError(f"pred_probs must have shape ({len(rows)}, {len(ls.classes)}), got {pred_probs.shape}")
    # n_jobs=1: cleanlab's default process pool forks this process, and a fork of a process whose other
    # threads hold locks (the metric writer's, a server's) can hang forever; one process is fast enough here
    ranked = filt.find_label_issues(labels, pred_probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    return [{"key": keys[rows[i]], "label": ls.classes[labels[i]],
             "suggested": ls.classes[int(pred_probs[i].argmax())],
             "label_probability": float(pred_probs[i, labels[i]]),
             "source": f"{resolved[keys[rows[i]]].source_kind}:{resolved[keys[rows[i]]].source}"} for i in ranked]


def _out_of_fold(table: Any, key: str, features: Sequence[str] | None, labels: Any, folds: int) -> Any:
    import numpy as np
    import pyarrow as pa
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if features is None:
        features = [f.name for f in table.schema if f.name != key and f.name not in ("label", "label_source",
                                                                                      "label_confidence")
                    and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))]
    if not features:
        raise ValidationError("no numeric feature columns to fit a model on; give features= or pred_probs=")
    x = np.column_stack([table[c].to_numpy(zero_copy_only=False).astype(float) for c in features])
    smallest = int(np.bincount(labels).min()) if len(np.unique(labels)) > 1 else 0
    if smallest < 2:
        raise ValidationError("every class needs at least two labelled rows for out-of-fold probabilities")
    cv = StratifiedKFold(n_splits=min(folds, smallest), shuffle=True, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return cross_val_predict(model, np.nan_to_num(x), labels, cv=cv, method="predict_proba")
