"""Active learning: each strategy on a synthetic pool, the kernel's checks, and the loop through the local backend."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from forgeml.errors import ForgeError, PluginError, ValidationError
from forgeml.labeling.active import choose, next_batch
from forgeml.plugins.labeling.strategies import Diverse, Entropy, LeastConfidence, Margin, RandomSampling

P = np.array([[0.98, 0.01, 0.01],   # sure
              [0.50, 0.495, 0.005],  # tiny margin, low entropy
              [0.34, 0.33, 0.33],   # near uniform: highest entropy, least confidence
              [0.70, 0.15, 0.15],
              [0.45, 0.45, 0.10]])  # zero margin


@pytest.mark.parametrize("strategy, expected", [
    (LeastConfidence(), [2, 4, 1]),
    (Margin(), [4, 1, 2]),
    (Entropy(), [2, 4, 3]),
])
def test_uncertainty_strategies_rank_by_their_measure(strategy: Any, expected: list[int]) -> None:
    """Least confidence, margin and entropy each put a different row first on the same pool."""
    assert strategy.select(P, 3) == expected


def test_ties_go_to_the_earlier_row() -> None:
    """Equal scores are ordered by row, whatever the partition does."""
    p = np.tile([[0.5, 0.5]], (1000, 1))
    assert Margin().select(p, 5) == [0, 1, 2, 3, 4]


def test_diverse_spreads_the_batch_over_clusters() -> None:
    """Three tight clusters, the three most uncertain rows all in one: margin stays there, diverse takes one of each."""
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [10, 0], [0, 10]])
    cluster = np.arange(90) % 3
    emb = centers[cluster] + rng.normal(scale=0.1, size=(90, 2))
    p = np.tile([0.55, 0.45], (90, 1))
    p[[0, 3, 6]] = [0.5, 0.5]
    assert {int(cluster[i]) for i in Margin().select(p, 3)} == {0}
    assert {int(cluster[i]) for i in Diverse().select(p, 3, embeddings=emb)} == {0, 1, 2}
    assert Diverse().select(p, 3, embeddings=emb)[0] == 0  # the most uncertain row leads


def test_random_is_seeded() -> None:
    """The baseline repeats with a seed and differs across seeds."""
    p = np.full((100, 2), 0.5)
    assert RandomSampling().select(p, 10, seed=1) == RandomSampling().select(p, 10, seed=1)
    assert RandomSampling().select(p, 10, seed=1) != RandomSampling().select(p, 10, seed=2)


class Repeats:
    """A broken strategy: returns the same row over and over."""

    name = "repeats"

    def select(self, probabilities: Any, n: int, embeddings: Any = None, seed: int = 0) -> list[int]:
        return [0] * n


class OutOfRange:
    """A broken strategy: returns rows past the end of the pool."""

    name = "out_of_range"

    def select(self, probabilities: Any, n: int, embeddings: Any = None, seed: int = 0) -> list[int]:
        return list(range(len(probabilities), len(probabilities) + n))


@pytest.mark.parametrize("broken", [Repeats(), OutOfRange()])
def test_the_kernel_refuses_a_bad_batch(broken: Any) -> None:
    """Repeated or out-of-range indices are refused, naming the strategy."""
    with pytest.raises(PluginError, match=f"query strategy '{broken.name}' returned"):
        choose(broken, P, 3)


def test_bad_inputs_to_choose() -> None:
    """Probabilities that are not a matrix and negative batch sizes are clear errors."""
    with pytest.raises(ValidationError, match="rows x classes"):
        choose(Margin(), np.array([0.1, 0.9]), 1)
    with pytest.raises(ValidationError, match="whole number"):
        choose(Margin(), P, -1)


def _model(workspace: Any, y: Any) -> str:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from forgeml.datasets import read_dataset
    from forgeml.registry.models import register_model

    table = read_dataset("pool@v1")
    x = pd.DataFrame({c: table[c].to_numpy() for c in "abc"})
    model = LogisticRegression().fit(x[:40], np.array(["neg", "pos"])[y[:40]])
    return register_model("clf", model, input_example=x[:5]).uri


def test_the_loop_through_the_local_backend(workspace: Any, pool: Any) -> None:
    """next -> people answer -> pull -> next again skips what was asked; pre-labels are the model's guesses."""
    from forgeml.labeling import get_labels
    from forgeml.labeling.annotate import answer, pending, pull

    _, y, _ = pool
    uri = _model(workspace, y)
    batch = next_batch("pool-labels", uri, strategy_name="margin", n=20)
    assert (batch.sent, batch.backend, batch.pool) == (20, "local", 400)
    assert all(abs(s - 0.5) < 0.2 for s in batch.scores)  # the model's least sure items
    tasks = pending("pool-labels", "ann", limit=100)
    assert sorted(t.key for t in tasks) == sorted(batch.keys)
    assert {t.key: t.prediction for t in tasks} == dict(zip(batch.keys, batch.predictions))
    for t in tasks[:12]:
        answer("pool-labels", t.key, ["neg", "pos"][y[int(t.key)]], "ann")
    assert pull("pool-labels")["annotations"] == 12
    assert pull("pool-labels")["annotations"] == 0
    assert len(get_labels("pool-labels", kinds=["annotator"])) == 12
    again = next_batch("pool-labels", uri, strategy_name="entropy", n=10)
    assert again.pool == 380 and not set(again.keys) & set(batch.keys)
    with pytest.raises(ValidationError, match="not one of"):
        answer("pool-labels", tasks[0].key, "maybe", "ann")


def test_next_batch_errors(workspace: Any, pool: Any) -> None:
    """An unknown strategy suggests the closest; a dry run sends nothing."""
    from forgeml.labeling.persistence import sent_keys

    _, y, _ = pool
    uri = _model(workspace, y)
    with pytest.raises(ForgeError, match="unknown query strategy 'margn'.*did you mean 'margin'"):
        next_batch("pool-labels", uri, strategy_name="margn")
    dry = next_batch("pool-labels", uri, strategy_name="diverse", n=5, send=False)
    assert len(dry.keys) == 5 and dry.sent == 0
    assert sent_keys(workspace, "pool-labels", "local") == set()


class OneColumn:
    """A binary model that gives only the positive class's probability (like a network ending in a sigmoid)."""

    def predict(self, x: Any) -> Any:
        a = np.asarray(x["a"].to_numpy(zero_copy_only=False), dtype=float)
        return 1 / (1 + np.exp(-4 * a))


def test_the_model_trained_on_the_label_set_is_the_default(workspace: Any, pool: Any) -> None:
    """Without --model, the staging version trained on this label set's training set scores the pool."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from forgeml.datasets import read_dataset
    from forgeml.labeling import add_labels, training_set
    from forgeml.labeling.active import default_model
    from forgeml.registry.models import register_model

    _, y, _ = pool
    with pytest.raises(ValidationError, match="name one with --model"):
        next_batch("pool-labels", strategy_name="margin", n=3, send=False)
    add_labels("pool-labels", {i: ["neg", "pos"][y[i]] for i in range(50)}, source_kind="annotator", source="ann")
    train = training_set("pool-labels")
    table = read_dataset(train.ref)
    x = pd.DataFrame({c: table[c].to_numpy() for c in "abc"})
    _model(workspace, y)  # another model, not trained on the label set
    mv = register_model("trained", LogisticRegression().fit(x, table["label"].to_numpy(zero_copy_only=False)),
                        input_example=x[:5], datasets=[train.ref])
    assert default_model("pool-labels") == mv.uri
    assert next_batch("pool-labels", strategy_name="margin", n=3, send=False).model == mv.uri


def test_a_one_column_binary_model_is_widened(workspace: Any, pool: Any) -> None:
    """P(pos) alone becomes [1 - p, p]: the items nearest a = 0 are the least certain."""
    batch = next_batch("pool-labels", OneColumn(), strategy_name="margin", n=5, send=False)
    from forgeml.datasets import read_dataset

    a = read_dataset("pool@v1")["a"].to_numpy()
    assert set(batch.keys) == {str(i) for i in np.argsort(np.abs(a))[:5]}


def test_gold_items_are_mixed_into_the_tasks(workspace: Any, pool: Any) -> None:
    """Three gold items go along without a pre-label; answering them gives the annotator a gold accuracy."""
    from forgeml.labeling import add_labels
    from forgeml.labeling.annotate import label_here, pending
    from forgeml.labeling.quality import gold_accuracy

    _, y, _ = pool
    add_labels("pool-labels", {i: ["neg", "pos"][y[i]] for i in range(300, 310)}, source_kind="gold", source="gold")
    batch = next_batch("pool-labels", _model(workspace, y), strategy_name="margin", n=5, gold=3)
    assert batch.sent == 8
    tasks = pending("pool-labels", "ann", limit=100)
    gold_tasks = [t for t in tasks if t.key not in batch.keys]
    assert len(gold_tasks) == 3 and all(300 <= int(t.key) < 310 and t.prediction is None for t in gold_tasks)
    for t in gold_tasks[:2]:
        label_here("pool-labels", t.key, ["neg", "pos"][y[int(t.key)]], "ann")
    label_here("pool-labels", gold_tasks[2].key, ["pos", "neg"][y[int(gold_tasks[2].key)]], "ann")
    assert gold_accuracy("pool-labels")["ann"] == {"gold_items": 3, "correct": 2, "accuracy": 2 / 3}
    again = next_batch("pool-labels", _model(workspace, y), strategy_name="margin", n=5, gold=20)
    assert again.sent == 5 + 7  # only the gold items not yet sent
