"""Fairness (fairlearn), calibration, robustness and the slice finder, and the gates built on them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forgeml.datasets import register_dataset
from forgeml.errors import GateFailedError
from forgeml.evaluation import evaluate
from forgeml.evaluation.calibration import fit_calibration
from forgeml.registry import load_model, promote, register_model
from forgeml.registry.calibration import calibration_of
from forgeml.workspace import Workspace, set_current


def _configure(workspace, model: str, gates_toml: str) -> Workspace:
    path = workspace.root / "plugins.toml"
    path.write_text(path.read_text() + f"\n[registry.models.{model}]\ngates = [\n{gates_toml}\n]\n")
    ws = Workspace(workspace.root)
    set_current(ws)
    return ws


def _groups(n=3000, seed=0):
    """Group 0 (85%) is decided by how far x1 is from 0 (not linear), group 1 (15%) by the sign of x2."""
    rng = np.random.default_rng(seed)
    g = (rng.random(n) < 0.15).astype(int)
    x = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "g": g})
    signal = np.where(g == 1, x.x2, np.abs(x.x1) - 0.67)
    y = (signal + rng.normal(scale=0.2, size=n) > 0).astype(int)
    return x, y


class TestFairness:
    def test_fairlearn_gaps_and_per_group_confusion(self, workspace):
        from sklearn.linear_model import LogisticRegression

        x, y = _groups()
        mv = register_model("fair", LogisticRegression().fit(x, y), input_example=x.head(5))
        result = evaluate(mv.uri, x.assign(label=y), "label", fairness=["g"])
        report = result.fairness["g"]
        groups = {g["group"]: g for g in report["groups"]}
        tprs = [groups[k]["true_positive_rate"] for k in (0, 1)]
        fprs = [groups[k]["false_positive_rate"] for k in (0, 1)]
        assert report["equal_opportunity_difference"] == pytest.approx(abs(tprs[0] - tprs[1]))
        assert report["equalized_odds_difference"] == pytest.approx(max(abs(tprs[0] - tprs[1]),
                                                                        abs(fprs[0] - fprs[1])))
        rates = [groups[k]["selection_rate"] for k in (0, 1)]
        assert report["demographic_parity_ratio"] == pytest.approx(min(rates) / max(rates))
        c = groups[1]["confusion"]
        assert sum(c.values()) == groups[1]["rows"] == int((x.g == 1).sum())
        assert 0 <= groups[1]["brier"] <= 1 and groups[1]["ece"] >= 0

    def test_the_gate_stops_a_model_that_improves_overall_but_hurts_a_group(self, workspace):
        from sklearn.ensemble import GradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression

        ws = _configure(workspace, "loan", """
            { gate = "no_regression", metric = "accuracy" },
            { gate = "fairness", column = "g", group_metric = "accuracy", max_group_drop = 0.05 },
        """)
        x, y = _groups()
        train, test = slice(0, 2000), slice(2000, None)
        # production: one linear model for everybody; challenger: boosted trees fitted on group 0 only
        prod = LogisticRegression().fit(x[train], y[train])
        only0 = (x.g[train] == 0).to_numpy()
        challenger = GradientBoostingClassifier(random_state=0).fit(x[train][only0], y[train][only0])
        holdout = register_dataset("holdout", x[test].assign(label=y[test]), workspace=ws).ref
        register_model("loan", prod, input_example=x.head(5), workspace=ws)
        register_model("loan", challenger, input_example=x.head(5), workspace=ws)
        evaluate("loan@1", holdout, "label", fairness=["g"], workspace=ws)
        promote("loan", 1, "production", workspace=ws)
        result = evaluate("loan@2", holdout, "label", fairness=["g"], workspace=ws)
        prod_acc = evaluate("loan@1", holdout, "label", store=False, workspace=ws).metrics["accuracy"]
        assert result.metrics["accuracy"] > prod_acc  # better overall ...
        with pytest.raises(GateFailedError, match=r"fairness\(g\).*group 1 accuracy fell"):
            promote("loan", 2, "production", workspace=ws)  # ... but group 1 is worse off

    def test_the_gate_checks_bounds_and_asks_for_a_report(self, workspace):
        from sklearn.linear_model import LogisticRegression

        ws = _configure(workspace, "dp", '{ gate = "fairness", column = "g", max_demographic_parity_difference = 0.001 },')
        x, y = _groups(800)
        register_model("dp", LogisticRegression().fit(x, y), input_example=x.head(5), workspace=ws)
        with pytest.raises(GateFailedError, match="no fairness report by 'g'"):
            promote("dp", 1, "production", workspace=ws)
        evaluate("dp@1", x.assign(label=y), "label", fairness=["g"], workspace=ws)
        with pytest.raises(GateFailedError, match=r"demographic_parity_difference = .* \(above 0.001\)"):
            promote("dp", 1, "production", workspace=ws)


def _overconfident(n=4000, seed=0):
    """Naive Bayes on ten copies of one noisy signal: it counts the evidence ten times, so it is overconfident."""
    from sklearn.naive_bayes import GaussianNB

    rng = np.random.default_rng(seed)
    s = rng.normal(size=n)
    x = pd.DataFrame({f"c{i}": s + rng.normal(scale=0.3, size=n) for i in range(10)})
    y = (s + rng.normal(scale=1.0, size=n) > 0).astype(int)
    return GaussianNB().fit(x[:2000], y[:2000]), x, y


class TestCalibration:
    @pytest.mark.parametrize("method", ["isotonic", "platt"])
    def test_a_calibrator_improves_brier_and_serving_applies_it_with_the_threshold(self, workspace, method):
        model, x, y = _overconfident()
        mv = register_model("nb", model, input_example=x.head(5))
        holdout = x[2000:3000].assign(label=y[2000:3000])
        test = x[3000:].assign(label=y[3000:])
        before = evaluate(mv.uri, test, "label", store=False)
        fitted = fit_calibration(mv.uri, holdout, "label", method=method, threshold=0.7)
        assert fitted.after["brier"] < fitted.before["brier"] - 0.01
        assert calibration_of("nb", 1, workspace)["threshold"] == 0.7
        after = evaluate(mv.uri, test, "label", store=False)  # load_model applies the stored calibrator
        assert after.calibration["brier"] < before.calibration["brier"] - 0.01
        assert after.calibration["ece"] < before.calibration["ece"]
        loaded = load_model(mv.uri)
        p = loaded.predict_proba(x[3000:3010])[:, 1]
        np.testing.assert_array_equal(loaded.predict(x[3000:3010]), (p >= 0.7).astype(int))

    def test_calibration_gate_and_bad_calibration_requests(self, workspace):
        from forgeml.errors import ForgeError

        ws = _configure(workspace, "nb", '{ gate = "calibration", max_ece = 0.05 },')
        model, x, y = _overconfident()
        register_model("nb", model, input_example=x.head(5), workspace=ws)
        evaluate("nb@1", x[3000:].assign(label=y[3000:]), "label", workspace=ws)
        with pytest.raises(GateFailedError, match="ece = .* above 0.05"):
            promote("nb", 1, "production", workspace=ws)
        fit_calibration("nb@1", x[2000:3000].assign(label=y[2000:3000]), "label", workspace=ws)
        evaluate("nb@1", x[3000:].assign(label=y[3000:]), "label", workspace=ws)
        assert promote("nb", 1, "production", workspace=ws).gates[0].passed
        with pytest.raises(ForgeError, match="calibration method"):
            fit_calibration("nb@1", x[2000:3000].assign(label=y[2000:3000]), "label", method="beta", workspace=ws)
        with pytest.raises(ForgeError, match="threshold"):
            fit_calibration("nb@1", x[2000:3000].assign(label=y[2000:3000]), "label", threshold=1.5, workspace=ws)


class TestRobustnessAndSlices:
    def test_slice_finder_finds_a_planted_weak_slice(self, workspace):
        from sklearn.ensemble import RandomForestClassifier

        rng = np.random.default_rng(0)
        n = 4000
        x = pd.DataFrame({"age": rng.integers(18, 80, n).astype(float), "income": rng.normal(size=n),
                          "region": rng.choice(["north", "south", "east", "west"], n)})
        y = (x.income > 0).astype(int).to_numpy().copy()
        weak = ((x.region == "west") & (x.age >= 60)).to_numpy()
        y[weak] = rng.integers(0, 2, weak.sum())  # labels there are coin flips: no model can do well
        x["region_code"] = x.region.map({"north": 0, "south": 1, "east": 2, "west": 3}).astype(float)
        features = ["age", "income", "region_code"]
        model = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0).fit(x[features], y)
        mv = register_model("credit", model, input_example=x[features].head(5))
        result = evaluate(mv.uri, x.assign(label=y).drop(columns=["region_code"]).assign(
            region_code=x.region_code), "label", find_slices=True)
        worst = result.weak_slices[0]["slice"]
        assert ("region = west" in worst or "region_code = 3.0" in worst) and "age in [6" in worst, \
            result.weak_slices

    def test_robustness_report_and_gate(self, workspace):
        from sklearn.linear_model import LogisticRegression

        ws = _configure(workspace, "robust", '{ gate = "robustness", metric = "roc_auc", max_drop = 0.02 },')
        x, y = _groups(1500)
        x["color"] = np.random.default_rng(0).choice(["red", "blue"], len(x))
        register_model("robust", LogisticRegression().fit(x[["x1", "x2", "g"]], y),
                       input_example=x[["x1", "x2", "g"]].head(5), workspace=ws)
        result = evaluate("robust@1", x.assign(label=y), "label", robustness=True, workspace=ws)
        report = result.robustness["perturbations"]
        assert report["noise"]["change"]["roc_auc"] < 0  # noisier inputs, worse ranking
        assert "error" in report["missing"]  # LogisticRegression takes no NaN: reported, not raised
        assert "skipped" not in report["swap"]
        with pytest.raises(GateFailedError, match="failed on missing inputs"):
            promote("robust", 1, "production", workspace=ws)

    def test_evaluation_plots_are_stored_as_png_and_svg_artifacts(self, workspace):
        from sklearn.linear_model import LogisticRegression

        x, y = _groups(600)
        mv = register_model("plots", LogisticRegression().fit(x, y), input_example=x.head(5), background=x)
        result = evaluate(mv.uri, x.assign(label=y), "label", fairness=["g"], importance=True, plots=True)
        assert set(result.plots) == {f"{n}.{f}" for n in ("reliability", "importance", "groups_g")
                                     for f in ("png", "svg")}
        with workspace.artifacts.open(result.plots["reliability.png"]) as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        with workspace.artifacts.open(result.plots["importance.svg"]) as f:
            assert b"<svg" in f.read()
