"""Label quality: kappa and alpha against hand-computed values, gold accuracy, weighted votes, cleanlab."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from forgeml.errors import ValidationError
from forgeml.labeling import add_labels
from forgeml.labeling.quality import (
    agreement,
    annotator_weights,
    cohen_kappa,
    fleiss_kappa,
    gold_accuracy,
    krippendorff_alpha,
    label_errors,
    vote,
)

A = list("aabbaabaab")
B = list("abbbaaaaab")


def test_cohen_kappa_by_hand() -> None:
    """po = 0.8, pe = 0.6·0.6 + 0.4·0.4 = 0.52, kappa = 0.28 / 0.48."""
    assert cohen_kappa(A, B) == pytest.approx(0.28 / 0.48)
    assert cohen_kappa(A, A) == 1.0
    with pytest.raises(ValidationError, match="equally long"):
        cohen_kappa(A, B[:3])


def test_fleiss_kappa_by_hand() -> None:
    """Items rated [3,0], [2,1], [0,3], [1,2]: P̄ = 2/3, P̄e = 1/2, kappa = 1/3."""
    ratings = [["x", "x", "x"], ["x", "x", "y"], ["y", "y", "y"], ["x", "y", "y"]]
    assert fleiss_kappa(ratings) == pytest.approx(1 / 3)
    with pytest.raises(ValidationError, match="same number"):
        fleiss_kappa([["x", "y"], ["x"]])


def test_krippendorff_alpha_by_hand() -> None:
    """Coincidences o_aa=2, o_ab=o_ba=1, o_bb=4: alpha = 1 - 7·2/30; an item one rater skipped changes nothing."""
    assert krippendorff_alpha([list("aabb"), list("abbb")]) == pytest.approx(1 - 7 * 2 / 30)
    assert krippendorff_alpha([[*"aabb", "a"], [*"abbb", None]]) == pytest.approx(1 - 7 * 2 / 30)


def _annotate(labels: dict[str, list[str]]) -> None:
    for name, values in labels.items():
        add_labels("pool-labels", {i: v for i, v in enumerate(values) if v is not None}, source_kind="annotator",
                   source=name)


def test_agreement_of_a_label_set(workspace: Any, pool: Any) -> None:
    """Pairs get Cohen's kappa, items with the usual number of raters Fleiss' kappa, everything Krippendorff's alpha."""
    to_class = {"a": "neg", "b": "pos"}
    _annotate({"ann": [to_class[v] for v in A], "bob": [to_class[v] for v in B],
               "cy": [to_class[v] for v in A[:5]]})
    got = agreement("pool-labels")
    pairs = {tuple(p["annotators"]): p for p in got["pairs"]}
    assert pairs[("ann", "bob")]["cohen_kappa"] == pytest.approx(0.28 / 0.48)
    assert pairs[("ann", "cy")] == {"annotators": ["ann", "cy"], "items": 5, "cohen_kappa": 1.0}
    assert got["fleiss"]["raters"] == 3 and got["fleiss"]["items"] == 5  # a tie with 2 raters goes to more raters
    assert -1 <= got["krippendorff_alpha"] <= 1


def test_gold_items_weigh_annotators(workspace: Any, pool: Any) -> None:
    """A careful annotator outvotes two careless ones once gold items show who is right."""
    rng = np.random.default_rng(1)
    truth = ["pos" if v else "neg" for v in rng.random(60) < 0.5]
    flip = {"pos": "neg", "neg": "pos"}
    careful = [t if i % 10 else flip[t] for i, t in enumerate(truth)]  # 90% right
    careless = [[t if r < 0.55 else flip[t] for t, r in zip(truth, rng.random(60))] for _ in range(2)]
    _annotate({"careful": careful, "c1": careless[0], "c2": careless[1]})
    add_labels("pool-labels", {i: truth[i] for i in range(30)}, source_kind="gold", source="gold")
    acc = gold_accuracy("pool-labels")
    assert acc["careful"] == {"gold_items": 30, "correct": 27, "accuracy": 0.9}
    weights = annotator_weights("pool-labels")
    assert weights["careful"] > 3 * max(weights["c1"], weights["c2"], 0.01)
    plain, weighted = vote("pool-labels"), vote("pool-labels", weighted=True)
    right = lambda votes: np.mean([votes[str(i)][0] == truth[i] for i in range(30, 60)])  # noqa: E731
    assert right(weighted) > right(plain)
    assert right(weighted) == pytest.approx(0.9, abs=0.04)


def test_gold_needs_gold_items(workspace: Any, pool: Any) -> None:
    """Without gold items the accuracy question is a clear error."""
    with pytest.raises(ValidationError, match="no gold items"):
        gold_accuracy("pool-labels")
    with pytest.raises(ValidationError, match="agreement needs two"):
        agreement("pool-labels")


def test_cleanlab_finds_planted_label_errors(workspace: Any, pool: Any) -> None:
    """Twenty labels flipped far from the boundary: most are in the suspect list, and it is short."""
    _, y, _ = pool
    from forgeml.datasets import read_dataset

    table = read_dataset("pool@v1")
    margin = table["a"].to_numpy() + 0.5 * table["b"].to_numpy()
    planted = set(np.argsort(-np.abs(margin))[:200:10].tolist())  # 20 rows, each far from the boundary
    labels = {i: ["neg", "pos"][1 - y[i] if i in planted else y[i]] for i in range(len(y))}
    add_labels("pool-labels", labels, source_kind="annotator", source="ann")
    suspects = label_errors("pool-labels")
    found = {int(s["key"]) for s in suspects}
    assert len(found & planted) >= 18, (sorted(found & planted), len(found))
    assert len(found) <= 35
    top = suspects[0]
    assert top["suggested"] != top["label"] and top["source"] == "annotator:ann"
