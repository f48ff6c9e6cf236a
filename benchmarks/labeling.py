"""Label efficiency of active learning, query selection over a large pool, and the label model.

1. Simulated task (a 20-feature classification problem, logistic regression): random sampling with
   1,000 labels sets the accuracy to reach; margin sampling starts from 20 random labels and asks for
   20 more at a time. Reported: how many labels margin (and entropy, diverse) needed to reach the
   random-1,000 accuracy, averaged over seeds. Floor: margin needs <= 500.
2. Query selection over a pool of 1,000,000 rows x 20 features with a small model (logistic regression
   fitted on 1,000 labels): scoring plus the strategy plugin plus the kernel's check of its answer.
   Floor: < 30 s.
3. Weak supervision: the Dawid-Skene label model on 200,000 rows x 10 labelling functions of known
   accuracies, against majority vote. No peer runs here: snorkel (whose LabelModel fits the same kind
   of model) needs torch and tensorboard in an environment of its own and is reported as skipped
   unless installed beside forgeml; modAL and scikit-activeml likewise for active learning.

Usage: python benchmarks/labeling.py [--pool-rows 1000000] [--seeds 3]
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import numpy as np

TEST_ROWS = 5000
POOL_ROWS = 20000
# one Gaussian cluster per class, 1% of labels flipped at random: a task a linear model can learn
TASK = {"n_samples": POOL_ROWS + TEST_ROWS, "n_features": 20, "n_informative": 10, "n_redundant": 4,
        "n_clusters_per_class": 1, "class_sep": 0.7, "flip_y": 0.01}


def task(seed: int) -> tuple[Any, Any, Any, Any]:
    """The simulated task: (pool x, pool y, test x, test y)."""
    from sklearn.datasets import make_classification

    x, y = make_classification(**TASK, random_state=seed)
    return x[:POOL_ROWS], y[:POOL_ROWS], x[POOL_ROWS:], y[POOL_ROWS:]


def fit(x: Any, y: Any) -> Any:
    """The model people would retrain after each batch."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)


def curve(strategy: Any, seed: int, budget: int, start: int = 20, batch: int = 20) -> list[tuple[int, float]]:
    """(labels, test accuracy) after each batch a strategy chose, starting from random labels."""
    from forgeml.labeling.active import choose

    px, py, tx, ty = task(seed)
    rng = np.random.default_rng(seed)
    labelled = list(rng.choice(len(px), size=start, replace=False))
    out = []
    while True:
        model = fit(px[labelled], py[labelled])
        out.append((len(labelled), float(model.score(tx, ty))))
        if len(labelled) >= budget:
            return out
        pool = np.setdiff1d(np.arange(len(px)), labelled)
        picked = choose(strategy, model.predict_proba(px[pool]), batch, embeddings=px[pool], seed=seed)
        labelled.extend(int(pool[i]) for i in picked)


def random_accuracy(seed: int, labels: int) -> float:
    """Test accuracy with labels chosen uniformly at random."""
    px, py, tx, ty = task(seed)
    chosen = np.random.default_rng(seed + 1000).choice(len(px), size=labels, replace=False)
    return float(fit(px[chosen], py[chosen]).score(tx, ty))


def label_efficiency(seeds: int) -> dict[str, Any]:
    """Labels each strategy needs to match random sampling's accuracy at 1,000 labels."""
    from forgeml.plugins.labeling.strategies import STRATEGIES

    results: dict[str, Any] = {}
    targets = [random_accuracy(s, 1000) for s in range(seeds)]
    results["random_1000_accuracy"] = round(float(np.mean(targets)), 4)
    for name in ("margin", "entropy", "diverse", "random"):
        needed, at_500 = [], []
        for s in range(seeds):
            points = curve(STRATEGIES[name][0](), s, 1000)
            reach = next((n for n, acc in points if acc >= targets[s]), None)
            needed.append(reach if reach is not None else float("inf"))
            at_500.append(next(acc for n, acc in points if n >= 500))
        results[name] = {"labels_to_match_random_1000": [None if np.isinf(n) else int(n) for n in needed],
                         "mean_labels": None if any(np.isinf(needed)) else float(np.mean(needed)),
                         "accuracy_at_500": round(float(np.mean(at_500)), 4)}
    return results


def selection_time(rows: int) -> dict[str, Any]:
    """Seconds to score a pool with a small model and choose 100 items, per strategy."""
    from forgeml.labeling.active import choose
    from forgeml.plugins.labeling.strategies import STRATEGIES

    px, py, _, _ = task(0)
    model = fit(px[:1000], py[:1000])
    rng = np.random.default_rng(1)
    pool = rng.normal(size=(rows, 20)).astype(np.float64)
    t0 = time.perf_counter()
    proba = model.predict_proba(pool)
    scoring = time.perf_counter() - t0
    out: dict[str, Any] = {"rows": rows, "scoring_s": round(scoring, 3)}
    for name in ("margin", "entropy", "least_confidence", "diverse"):
        t0 = time.perf_counter()
        picked = choose(STRATEGIES[name][0](), proba, 100, embeddings=pool if name == "diverse" else None)
        out[f"{name}_select_s"] = round(time.perf_counter() - t0, 3)
        assert len(picked) == 100
    out["total_margin_s"] = round(scoring + out["margin_select_s"], 3)
    return out


def label_model(rows: int = 200_000, functions: int = 10) -> dict[str, Any]:
    """Dawid-Skene against majority vote on votes from a known generative model."""
    from forgeml.labeling.weak import ABSTAIN, LabelModel, majority_proba

    rng = np.random.default_rng(5)
    y = (rng.random(rows) < 0.3).astype(int)
    accuracies = np.linspace(0.55, 0.95, functions)
    votes = np.full((rows, functions), ABSTAIN)
    for j, acc in enumerate(accuracies):
        voting = rng.random(rows) < 0.5
        right = rng.random(rows) < acc
        votes[voting, j] = np.where(right[voting], y[voting], 1 - y[voting])
    t0 = time.perf_counter()
    model = LabelModel(2).fit(votes)
    seconds = time.perf_counter() - t0
    covered = (votes != ABSTAIN).any(axis=1)
    return {"rows": rows, "functions": functions, "fit_s": round(seconds, 3), "iterations": model.n_iter_,
            "accuracy_error_max": round(float(np.abs(model.accuracies_ - accuracies).max()), 4),
            "dawid_skene_accuracy": round(float((model.predict_proba(votes).argmax(1) == y)[covered].mean()), 4),
            "majority_accuracy": round(float((majority_proba(votes, 2).argmax(1) == y)[covered].mean()), 4)}


def peers() -> dict[str, str]:
    """Which peers ran, or why not."""
    out = {}
    for name, module in (("snorkel", "snorkel"), ("modAL", "modAL"), ("scikit-activeml", "skactiveml")):
        out[name] = ("installed, not yet compared here" if importlib.util.find_spec(module)
                     else f"skipped: {name} is not installed beside forgeml")
    return out


def main() -> None:
    """Run the three workloads and print one JSON line."""
    import argparse

    from common import finish

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pool-rows", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    efficiency = label_efficiency(args.seeds)
    selection = selection_time(args.pool_rows)
    margin = efficiency["margin"]["labels_to_match_random_1000"]
    finish("labeling", {
        "task": {**TASK, "model": "StandardScaler + LogisticRegression", "start": 20, "batch": 20},
        "active_learning": efficiency,
        "selection": selection,
        "label_model": label_model(),
        "peers": peers(),
        "floors": {"margin_reaches_random_1000_with_500_labels": all(n is not None and n <= 500 for n in margin),
                   "selection_1m_rows_under_30s": selection["total_margin_s"] < 30},
    })


if __name__ == "__main__":
    main()
