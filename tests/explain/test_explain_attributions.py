"""Per-prediction attributions of real scikit-learn and torch models, checked against what shap's theory says."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from forgeml.errors import ForgeError, ValidationError
from forgeml.explain import explain
from forgeml.registry import load_model, register_model
from forgeml.registry.background import read_background
from forgeml.serving.explain_batch import explain_batch


def _frame(n=400, seed=0, features=4):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, features)), columns=[f"x{i}" for i in range(features)])
    X["x0"] += 3.0  # a non-zero mean, so x - mean differs from x
    return X


class TestLinear:
    def test_linear_regression_attributions_equal_coefficient_times_distance_from_the_mean(self, workspace):
        from sklearn.linear_model import LinearRegression

        X = _frame()
        y = 2.0 * X.x0 - 1.5 * X.x1 + 0.5 * X.x2 + np.random.default_rng(1).normal(scale=0.1, size=len(X))
        model = LinearRegression().fit(X, y)
        mv = register_model("lin", model, input_example=X.head(3), background=X)
        background = read_background(mv, workspace)
        assert len(background) == 100  # sampled down, stored inside the version
        rows = X.tail(5)
        att = explain(mv.uri, rows)
        assert att.method == "linear"
        expected = model.coef_ * (rows.to_numpy() - background.to_numpy().mean(axis=0))
        np.testing.assert_allclose(att.values, expected, atol=1e-9)
        # local accuracy: the base value plus the attributions is the model's prediction
        np.testing.assert_allclose(att.base_values + att.values.sum(axis=1), model.predict(rows), atol=1e-9)
        top = att.reasons(top_k=2)[0]
        assert [r["feature"] for r in top] == [X.columns[j] for j in np.argsort(-np.abs(expected[0]))[:2]]

    def test_logistic_regression_is_explained_in_log_odds_of_the_positive_class(self, workspace):
        from sklearn.linear_model import LogisticRegression

        X = _frame()
        y = np.array(["no", "yes"])[(X.x1 - X.x2 > 0).astype(int)]
        model = LogisticRegression().fit(X, y)
        mv = register_model("logit", model, input_example=X.head(3), background=X.head(200))
        att = explain(mv.uri, X.head(4))
        assert att.outputs == ["yes"] * 4
        logit = model.decision_function(X.head(4))
        np.testing.assert_allclose(att.base_values + att.values.sum(axis=1), logit, atol=1e-6)


class TestTree:
    def test_tree_ensemble_attributions_add_up_to_the_probability(self, workspace):
        from sklearn.ensemble import RandomForestClassifier

        X = _frame()
        y = (X.x0 - 3 + X.x3 > 0).astype(int)
        model = RandomForestClassifier(n_estimators=30, max_depth=5, random_state=0).fit(X, y)
        mv = register_model("forest", model, input_example=X.head(3))
        att = explain(mv.uri, X.head(20))
        assert att.method == "tree"
        np.testing.assert_allclose(att.base_values + att.values.sum(axis=1), model.predict_proba(X.head(20))[:, 1],
                                   atol=1e-6)
        # features the label never used get little credit next to the ones it did
        mean = np.abs(att.values).mean(axis=0)
        assert min(mean[0], mean[3]) > max(mean[1], mean[2])

    def test_multiclass_rows_are_explained_toward_their_predicted_class(self, workspace):
        from sklearn.ensemble import ExtraTreesClassifier

        X = _frame()
        y = np.digitize(X.x1, [-0.5, 0.5])
        model = ExtraTreesClassifier(n_estimators=20, max_depth=6, random_state=0).fit(X, y)
        mv = register_model("trees3", model, input_example=X.head(3))
        att = explain(mv.uri, X.head(30))
        assert att.method == "tree"
        assert att.outputs == model.predict(X.head(30)).tolist()
        assert all(r[0]["feature"] == "x1" for r in att.reasons(1))


class TestModelAgnostic:
    def test_a_pipeline_with_categories_is_explained_by_kernel_shap(self, workspace):
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import LinearRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder

        rng = np.random.default_rng(0)
        X = pd.DataFrame({"size": rng.normal(size=300), "color": rng.choice(["red", "blue", "green"], 300)})
        y = 3 * X["size"] + (X["color"] == "red") * 4.0
        model = make_pipeline(ColumnTransformer([("c", OneHotEncoder(), ["color"])], remainder="passthrough"),
                              LinearRegression()).fit(X, y)
        mv = register_model("mixed", model, input_example=X.head(5), background=X)
        rows = X.head(6)
        att = explain(mv.uri, rows)
        assert att.method == "kernel"
        # exact for an additive model: each row's attributions sum to its distance from the mean output
        np.testing.assert_allclose(att.base_values + att.values.sum(axis=1), model.predict(rows), atol=1e-6)
        red = rows["color"].to_numpy() == "red"
        color = att.values[:, 1]
        assert (color[red] > 0).all() and (color[~red] < 0).all()

    def test_a_model_without_a_background_gets_a_clear_error(self, workspace):
        from sklearn.neighbors import KNeighborsRegressor

        X = _frame()
        model = KNeighborsRegressor().fit(X, X.x0)
        mv = register_model("knn", model)
        with pytest.raises(ValidationError, match="background"):
            explain(mv.uri, X.head(2))

    def test_missing_feature_and_unknown_method_are_errors(self, workspace):
        from sklearn.linear_model import LinearRegression

        X = _frame()
        mv = register_model("lin2", LinearRegression().fit(X, X.x1), input_example=X.head(3), background=X)
        with pytest.raises(ValidationError, match="x3"):
            explain(mv.uri, X.head(2).drop(columns=["x3"]))
        with pytest.raises(ForgeError, match="unknown explanation method"):
            explain(mv.uri, X.head(2), method="lime")


class TestTorch:
    def test_deep_explainer_attributions_add_up_to_the_network_output(self, workspace):
        X = _frame(features=5).astype("float32")
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        mv = register_model("net", net, input_example=X.head(4), background=X)
        att = explain(mv.uri, X.tail(6))
        assert att.method == "deep"
        out = load_model(mv.uri).predict(X.tail(6))
        np.testing.assert_allclose(att.base_values + att.values.sum(axis=1), out, atol=1e-4)

    def test_torchscript_falls_back_to_expected_gradients(self, workspace):
        X = _frame(features=3).astype("float32")
        torch.manual_seed(0)
        net = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(3, 1)))
        mv = register_model("scripted", net, input_example=X.head(4), background=X)
        att = explain(mv.uri, X.head(3))
        assert att.method == "gradient"
        weight = net[0].weight.detach().numpy().ravel()
        bg = read_background(mv, workspace).to_numpy()
        # for a linear network expected gradients estimate weight * (x - mean of the background) by sampling
        np.testing.assert_allclose(att.values, weight * (X.head(3).to_numpy() - bg.mean(axis=0)), atol=0.08)


class TestBatch:
    def test_explain_batch_writes_attributions_and_reasons_per_row(self, workspace, tmp_path):
        from sklearn.ensemble import GradientBoostingRegressor

        X = _frame(n=500)
        model = GradientBoostingRegressor(n_estimators=20, random_state=0).fit(X, 5 * X.x2)
        register_model("gbr", model, input_example=X.head(3))
        src = tmp_path / "in.parquet"
        pq.write_table(pa.Table.from_pandas(X, preserve_index=False), src)
        result = explain_batch("gbr@latest", str(src), str(tmp_path / "out.parquet"), top_k=2, chunk_size=128)
        assert (result.rows, result.method) == (500, "tree")
        assert result.top_features[0]["feature"] == "x2"
        out = pq.read_table(tmp_path / "out.parquet").to_pandas()
        assert {"shap_x0", "base_value", "reason_1", "reason_2"} <= set(out.columns)
        total = out.base_value + out[[f"shap_x{i}" for i in range(4)]].sum(axis=1)
        np.testing.assert_allclose(total, model.predict(X), atol=1e-6)
        assert (out.reason_1 == "x2").mean() > 0.9
