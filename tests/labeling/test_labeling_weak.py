"""Weak supervision: labelling functions, their statistics, and the label model against a known generative model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from forgeml.errors import ValidationError
from forgeml.labeling.weak import (
    ABSTAIN,
    LabelModel,
    apply_functions,
    function_stats,
    labeling_function,
    load_functions,
    majority_proba,
    weak_label,
)


def simulate(n: int, accuracies: list[float], coverages: list[float], prior: float = 0.3, seed: int = 0):
    """Votes of conditionally independent functions with known accuracies and coverages on a binary task."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prior).astype(int)
    votes = np.full((n, len(accuracies)), ABSTAIN)
    for j, (acc, cov) in enumerate(zip(accuracies, coverages)):
        voting = rng.random(n) < cov
        right = rng.random(n) < acc
        votes[voting, j] = np.where(right[voting], y[voting], 1 - y[voting])
    return votes, y


def test_the_label_model_recovers_known_accuracies_and_beats_the_majority() -> None:
    """Votes drawn with accuracies 0.95/0.85/0.7/0.6: EM finds them within 0.03 and labels better than majority vote."""
    accuracies = [0.95, 0.85, 0.7, 0.6]
    votes, y = simulate(20000, accuracies, [0.6, 0.8, 0.9, 0.9])
    model = LabelModel(2).fit(votes)
    assert np.abs(model.accuracies_ - accuracies).max() < 0.03, model.accuracies_
    assert model.priors_[1] == pytest.approx(0.3, abs=0.02)
    covered = (votes != ABSTAIN).any(axis=1)
    ds_acc = (model.predict_proba(votes).argmax(axis=1) == y)[covered].mean()
    mv_acc = (majority_proba(votes, 2).argmax(axis=1) == y)[covered].mean()
    assert ds_acc > mv_acc + 0.02, (ds_acc, mv_acc)


def test_probabilities_are_calibrated_on_the_generative_model() -> None:
    """Among rows the model gives 0.8-0.95, the truth agrees about that often."""
    votes, y = simulate(30000, [0.8, 0.75, 0.7], [0.7, 0.7, 0.7], seed=3)
    p = LabelModel(2).fit(votes).predict_proba(votes)
    top = p.max(axis=1)
    band = (top > 0.8) & (top < 0.95)
    assert band.sum() > 1000
    assert (p.argmax(axis=1) == y)[band].mean() == pytest.approx(top[band].mean(), abs=0.03)


def test_function_statistics_by_hand() -> None:
    """Coverage, overlaps, conflicts and gold accuracy on a 4-row example worked out by hand."""
    votes = np.array([[0, 0], [1, 0], [ABSTAIN, 1], [ABSTAIN, ABSTAIN]])
    stats = function_stats(votes, ["f", "g"], gold=np.array([0, 1, 0, ABSTAIN]))
    assert stats[0] == {"function": "f", "coverage": 0.5, "overlaps": 0.5, "conflicts": 0.25, "accuracy": 1.0,
                        "gold_votes": 2}
    assert stats[1] == {"function": "g", "coverage": 0.75, "overlaps": 0.5, "conflicts": 0.25,
                        "accuracy": pytest.approx(1 / 3), "gold_votes": 3}


def test_bad_functions_and_votes_are_clear_errors() -> None:
    """A function that raises or returns an unknown class names itself; malformed votes are refused."""
    rows = [{"a": 1}, {"a": None}]

    @labeling_function()
    def breaks(row: dict) -> str:
        return "pos" if row["a"] > 0 else "neg"

    @labeling_function("says_maybe")
    def unknown(row: dict) -> str:
        return "maybe"

    with pytest.raises(ValidationError, match="'breaks' failed on row 1: TypeError"):
        apply_functions([breaks], rows, ["neg", "pos"])
    with pytest.raises(ValidationError, match="'says_maybe' returned 'maybe'"):
        apply_functions([unknown], rows, ["neg", "pos"])
    with pytest.raises(ValidationError, match="names must differ"):
        apply_functions([breaks, breaks], rows, ["neg", "pos"])
    with pytest.raises(ValidationError, match="class indices"):
        LabelModel(2).fit(np.array([[0, 2]]))
    with pytest.raises(ValidationError, match="fit the label model"):
        LabelModel(2).predict_proba(np.array([[0, 1]]))


def test_weak_labels_land_in_the_label_set(workspace: Any, pool: Any, tmp_path: Any) -> None:
    """Functions from a file label the pool; label-model labels carry confidence, votes their function's name."""
    from forgeml.labeling import add_labels, get_labels

    _, y, _ = pool
    add_labels("pool-labels", {i: ["neg", "pos"][y[i]] for i in range(40)}, source_kind="gold", source="gold")
    path = tmp_path / "lfs.py"
    path.write_text(
        "from forgeml.labeling.weak import labeling_function\n"
        "@labeling_function()\n"
        "def big_a(row):\n    return 'pos' if row['a'] > 0.3 else ('neg' if row['a'] < -0.3 else None)\n"
        "@labeling_function()\n"
        "def big_b(row):\n    return 'pos' if row['b'] > 1 else ('neg' if row['b'] < -1 else None)\n"
        "@labeling_function()\n"
        "def sum_ab(row):\n    return 'pos' if row['a'] + row['b'] > 0 else 'neg'\n")
    result = weak_label("pool-labels", load_functions(str(path)))
    assert result["labelled"] == 400  # sum_ab always votes
    assert {f["function"] for f in result["functions"]} == {"big_a", "big_b", "sum_ab"}
    assert all(f["gold_votes"] > 0 for f in result["functions"])
    model_labels = get_labels("pool-labels", kinds=["label_model"])
    assert len(model_labels) == 400 and all(0.5 <= r.confidence <= 1 for r in model_labels)
    accuracy = np.mean([r.label == ["neg", "pos"][y[int(r.key)]] for r in model_labels])
    assert accuracy > 0.85
    assert {r.source for r in get_labels("pool-labels", kinds=["function"])} == {"big_a", "big_b", "sum_ab"}
    with pytest.raises(ValidationError, match="defines no labelling functions"):
        empty = tmp_path / "none.py"
        empty.write_text("x = 1\n")
        load_functions(str(empty))
