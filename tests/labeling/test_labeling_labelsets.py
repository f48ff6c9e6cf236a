"""Label sets: records with source, time and confidence; resolution; training sets; lineage into a model."""

from __future__ import annotations

from typing import Any

import pytest

from forgeml.errors import ForgeError, NotFoundError, ValidationError
from forgeml.labeling import add_labels, create_label_set, get_labels, training_set
from forgeml.labeling.labelsets import LabelRecord, label_counts, lineage, resolve, snapshot


def test_labels_keep_their_source_time_and_confidence(workspace: Any, pool: Any) -> None:
    """Each record reads back with who gave it, when and how sure; a source relabelling an item replaces its record."""
    add_labels("pool-labels", {1: "pos", 2: "neg"}, source_kind="annotator", source="ann", at=1000.0)
    add_labels("pool-labels", {1: "neg"}, source_kind="model", source="clf@1", confidence=0.8, at=1001.0)
    add_labels("pool-labels", {1: "neg"}, source_kind="annotator", source="ann", at=1002.0)
    got = sorted((r.key, r.label, r.source_kind, r.source, r.confidence, r.labelled_at) for r in get_labels("pool-labels"))
    assert got == [("1", "neg", "annotator", "ann", None, 1002.0), ("1", "neg", "model", "clf@1", 0.8, 1001.0),
                   ("2", "neg", "annotator", "ann", None, 1000.0)]
    assert label_counts("pool-labels")["by_kind"] == {"annotator": 2, "model": 1}


@pytest.mark.parametrize("bad, message", [
    ({"labels": {1: "maybe"}}, "not one of"),
    ({"labels": {1: "pos"}, "confidence": 1.5}, "not in [0, 1]"),
    ({"labels": {1: "pos"}, "confidence": float("nan")}, "not in [0, 1]"),
    ({"labels": {1: "pos"}, "source_kind": "oracle"}, "unknown label source kind"),
    ({"labels": {1: "pos"}, "source": " "}, "needs a source"),
    ({"labels": {None: "pos"}}, "without an item key"),
])
def test_bad_labels_are_refused_and_nothing_is_written(workspace: Any, pool: Any, bad: dict, message: str) -> None:
    """A bad label is a one-line ForgeError, and the good labels beside it are not written either."""
    bad = dict(bad)  # the parameter is shared between the sqlite and postgres runs
    labels = {0: "neg", **bad.pop("labels")}
    kwargs = {"source_kind": "annotator", "source": "ann", **bad}
    with pytest.raises(ForgeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        add_labels("pool-labels", labels, **kwargs)
    assert get_labels("pool-labels") == []


def test_label_set_errors(workspace: Any, pool: Any) -> None:
    """Unknown datasets, key columns and label sets, too few classes and a clashing name are clear errors."""
    with pytest.raises(NotFoundError, match="unknown dataset"):
        create_label_set("x", "nope", "id", ["a", "b"])
    with pytest.raises(NotFoundError, match="key column"):
        create_label_set("x", "pool", "idd", ["a", "b"])
    with pytest.raises(ValidationError, match="two distinct"):
        create_label_set("x", "pool", "id", ["a", "a"])
    with pytest.raises(ValidationError, match="invalid label set name"):
        create_label_set("../x", "pool", "id", ["a", "b"])
    with pytest.raises(ValidationError, match="exists"):
        create_label_set("pool-labels", "pool", "id", ["a", "b"])
    assert create_label_set("pool-labels", "pool", "id", ["neg", "pos"]).name == "pool-labels"
    with pytest.raises(NotFoundError, match="did you mean 'pool-labels'"):
        get_labels("pool-label")


def test_resolution_prefers_outcomes_then_people_then_functions() -> None:
    """Gold and outcomes beat annotators, annotators vote, the label model beats a lone function; model guesses never train."""
    records = [
        LabelRecord("1", "pos", "annotator", "a", None, 1), LabelRecord("1", "neg", "outcome", "chargebacks", None, 2),
        LabelRecord("2", "pos", "annotator", "a", None, 1), LabelRecord("2", "neg", "annotator", "b", None, 1),
        LabelRecord("2", "neg", "annotator", "c", None, 1),
        LabelRecord("3", "pos", "function", "lf", None, 1), LabelRecord("3", "neg", "label_model", "ds", 0.7, 1),
        LabelRecord("4", "pos", "model", "clf@1", 0.9, 1),
    ]
    got = resolve(records)
    assert (got["1"].label, got["1"].source_kind) == ("neg", "outcome")
    assert (got["2"].label, got["2"].source, got["2"].confidence) == ("neg", "b,c", pytest.approx(2 / 3))
    assert (got["3"].label, got["3"].source_kind, got["3"].confidence) == ("neg", "label_model", 0.7)
    assert "4" not in got
    weighted = resolve(records, annotator_weights={"a": 5.0, "b": 1.0, "c": 1.0})
    assert weighted["2"].label == "pos"


def test_labels_flow_into_a_trained_model(workspace: Any, pool: Any) -> None:
    """Labels -> training set (an ordinary dataset version) -> model; lineage walks back from the label set."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from forgeml.datasets import read_dataset
    from forgeml.registry.models import register_model

    dv, y, _ = pool
    add_labels("pool-labels", {i: ["neg", "pos"][y[i]] for i in range(60)}, source_kind="annotator", source="ann")
    add_labels("pool-labels", {i: "pos" for i in range(60, 70)}, source_kind="label_model", source="ds",
               confidence=0.55)
    train = training_set("pool-labels", min_confidence=0.6)
    table = read_dataset(train.ref)
    assert train.num_rows == 60 and table.column_names[-3:] == ["label", "label_source", "label_confidence"]
    assert set(table["label_source"].to_pylist()) == {"annotator:ann"}
    assert train.tags["labels"] == "pool-labels.labels@v1" and train.tags["dataset"] == dv.ref
    x = np.column_stack([table[c].to_numpy() for c in "abc"])
    model = LogisticRegression().fit(x, table["label"].to_numpy(zero_copy_only=False))
    mv = register_model("clf", model, datasets=[train.ref])
    got = lineage("pool-labels")
    assert got["snapshots"] == ["pool-labels.labels@v1"]
    assert got["training_sets"][0]["models"] == [f"clf@{mv.version}"]
    # the frozen snapshot keeps every record, the low-confidence ones included
    assert read_dataset(snapshot("pool-labels").ref).num_rows == 70


def test_a_training_set_needs_labelled_rows(workspace: Any, pool: Any) -> None:
    """No labels, or none confident enough: a clear error and no new version."""
    with pytest.raises(ValidationError, match="no labels yet"):
        training_set("pool-labels")
    add_labels("pool-labels", {1: "pos"}, source_kind="label_model", source="ds", confidence=0.5)
    with pytest.raises(ValidationError, match="no row of pool@v1 has a label"):
        training_set("pool-labels", min_confidence=0.9)
