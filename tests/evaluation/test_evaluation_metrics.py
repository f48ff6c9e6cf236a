"""Evaluation of real scikit-learn and torch models: metrics, slices, fairness, comparison, backtests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import metrics as skm

from forgeml.datasets import register_dataset
from forgeml.errors import NotFoundError, ValidationError
from forgeml.evaluation import (
    backtest,
    compare,
    evaluate,
    expected_calibration_error,
    ranking_metrics,
)
from forgeml.registry import evaluations, register_model


def _frame(n=600, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n),
                       "region": rng.choice(["north", "south", "east"], n),
                       "group": rng.choice(["g1", "g2"], n, p=[0.7, 0.3]),
                       "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), unit="h")})
    df["label"] = (df.a + df.b + rng.normal(scale=0.7, size=n) > 0).astype(int)
    df["amount"] = 3 * df.a - 2 * df.b + rng.normal(scale=0.1, size=n)
    return df


@pytest.fixture
def classifier(workspace):
    from sklearn.linear_model import LogisticRegression

    train, test = _frame(seed=1), _frame(seed=2)
    model = LogisticRegression().fit(train[["a", "b", "c"]], train.label)
    register_model("clf", model, input_example=train[["a", "b", "c"]].head(3))
    register_dataset("holdout", test)
    return model, test


def test_classification_metrics_slices_and_fairness(classifier):
    model, test = classifier
    result = evaluate("clf@1", "holdout@v1", "label", slices=["region"], fairness=["group"])
    proba = model.predict_proba(test[["a", "b", "c"]])[:, 1]
    labels = model.predict(test[["a", "b", "c"]])
    assert result.task == "classification" and result.rows == 600
    assert result.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(test.label, proba))
    assert result.metrics["accuracy"] == pytest.approx(skm.accuracy_score(test.label, labels))
    assert result.metrics["log_loss"] == pytest.approx(skm.log_loss(test.label, proba))
    assert result.metrics["pr_auc"] == pytest.approx(skm.average_precision_score(test.label, proba))
    assert result.metrics["f1"] == pytest.approx(skm.f1_score(test.label, labels))
    by_region = {s["value"]: s for s in result.slices["region"]}
    assert set(by_region) == {"north", "south", "east"}
    assert sum(s["rows"] for s in by_region.values()) == 600
    north = test.region == "north"
    assert by_region["north"]["metrics"]["roc_auc"] == pytest.approx(skm.roc_auc_score(test.label[north], proba[north]))
    fair = result.fairness["group"]
    rates = {g["group"]: g["selection_rate"] for g in fair["groups"]}
    assert fair["demographic_parity_difference"] == pytest.approx(abs(rates["g1"] - rates["g2"]))
    assert 0 <= fair["equal_opportunity_difference"] <= 1
    stored = evaluations("clf", 1)
    assert stored[0]["dataset"] == "holdout@v1" and stored[0]["metrics"]["roc_auc"] == result.metrics["roc_auc"]
    assert stored[0]["result"]["slices"]["region"]


def test_torch_regression_model(workspace):
    test = _frame(seed=3)
    net = torch.nn.Linear(3, 1)
    with torch.no_grad():  # the true coefficients: a real model whose error we know
        net.weight.copy_(torch.tensor([[3.0, -2.0, 0.0]]))
        net.bias.zero_()
    register_model("reg", net, input_example=test[["a", "b", "c"]].head(2))
    result = evaluate("reg@1", test, "amount", slices=["a"])
    pred = 3 * test.a - 2 * test.b
    assert result.task == "regression"
    assert result.metrics["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(test.amount, pred)), rel=1e-4)
    assert result.metrics["mae"] == pytest.approx(skm.mean_absolute_error(test.amount, pred), rel=1e-4)
    assert result.metrics["r2"] > 0.99
    assert len(result.slices["a"]) == 4, "a many-valued numeric column is sliced into quartiles"
    assert result.dataset.startswith("table:")


def test_ranking_metrics_on_a_known_example():
    query = [1, 1, 1, 2, 2, 2]
    relevance = [0, 1, 0, 1, 0, 0]
    scores = [0.9, 0.8, 0.1, 0.2, 0.3, 0.9]  # query 1: relevant at rank 2; query 2: at rank 3
    out = ranking_metrics(query, relevance, scores, k=2)
    assert out["mrr"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert out["hit_rate@2"] == pytest.approx(0.5)
    assert out["map"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert 0 < out["ndcg@2"] < 1


def test_ranking_task_through_evaluate(workspace):
    df = pd.DataFrame({"q": [1, 1, 2, 2], "x": [0.9, 0.1, 0.2, 0.8], "rel": [1, 0, 0, 1]})
    register_model("ranker", lambda frame: frame["x"].to_numpy(), flavor="python",
                   input_example=df[["x"]].head(1))
    result = evaluate("ranker@1", df, "rel", task="ranking", query_column="q", k=1)
    assert result.metrics["mrr"] == 1.0 and result.metrics["ndcg@1"] == 1.0


def test_expected_calibration_error():
    assert expected_calibration_error([0, 1, 0, 1], [0.0, 1.0, 0.0, 1.0]) == 0.0
    assert expected_calibration_error([0, 0, 0, 0], [0.9, 0.9, 0.9, 0.9]) == pytest.approx(0.9)


def test_champion_vs_challenger_bootstrap(classifier):
    from sklearn.linear_model import LogisticRegression

    train = _frame(seed=1)
    noisy = LogisticRegression().fit(train[["c"]].assign(a=0.0, b=0.0)[["a", "b", "c"]], train.label)
    register_model("clf", noisy, input_example=train[["a", "b", "c"]].head(3))
    cmp = compare("clf@1", "clf@2", "holdout@v1", "label", metrics=["roc_auc", "log_loss"], n_boot=200, seed=1)
    auc = next(m for m in cmp.metrics if m.metric == "roc_auc")
    assert auc.champion > auc.challenger
    assert auc.difference_ci[1] < 0 and auc.challenger_better_prob < 0.05
    assert auc.champion_ci[0] <= auc.champion <= auc.champion_ci[1]
    loss = next(m for m in cmp.metrics if m.metric == "log_loss")
    assert not loss.higher_is_better and loss.challenger_better_prob < 0.05
    again = compare("clf@1", "clf@2", "holdout@v1", "label", metrics=["roc_auc"], n_boot=200, seed=1)
    assert again.metrics[0].difference_ci == auc.difference_ci, "the same seed gives the same intervals"


def test_backtest_rolling_windows(classifier):
    windows = backtest("clf@1", "holdout@v1", "label", "ts", window="5D", step="5D")
    assert [w.rows for w in windows] == [120] * 5
    assert all(w.metrics["accuracy"] > 0.6 for w in windows)

    def train(history):
        from sklearn.linear_model import LogisticRegression

        frame = history.to_pandas()
        fitted = LogisticRegression().fit(frame[["a", "b", "c"]], frame.label)

        class Predictor:
            def predict_proba(self, table):
                return fitted.predict_proba(table.to_pandas()[["a", "b", "c"]])

        return Predictor()

    walk = backtest(None, "holdout@v1", "label", "ts", window="5D", train=train)
    assert [w.train_rows for w in walk] == [120, 240, 360, 480]


def test_bad_evaluation_input(classifier):
    with pytest.raises(NotFoundError, match="did you mean 'label'"):
        evaluate("clf@1", "holdout@v1", "labels")
    with pytest.raises(NotFoundError, match="unknown slice column"):
        evaluate("clf@1", "holdout@v1", "label", slices=["nope"])
    with pytest.raises(ValidationError, match="labels the model does not know"):
        evaluate("clf@1", _frame().assign(label=7), "label")
    with pytest.raises(ValidationError, match="binary classification"):
        evaluate("reg_missing@1" if False else "clf@1", "holdout@v1", "amount", task="regression", fairness=["group"])
    with pytest.raises(NotFoundError, match="unknown model"):
        evaluate("nope@1", "holdout@v1", "label")


def test_model_without_probabilities_gets_label_metrics_only(workspace):
    from sklearn.svm import LinearSVC

    train, test = _frame(seed=1), _frame(seed=2)
    model = LinearSVC().fit(train[["a", "b", "c"]], train.label.map({0: "no", 1: "yes"}))
    register_model("svc", model, input_example=train[["a", "b", "c"]].head(2))
    result = evaluate("svc@1", test.assign(label=test.label.map({0: "no", 1: "yes"})), "label")
    assert result.metrics["accuracy"] > 0.7
    assert "roc_auc" not in result.metrics, "ranking metrics need scores the model does not give"
