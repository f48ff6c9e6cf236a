"""Global importance at evaluation: mean |SHAP| and permutation, stored, champion vs challenger, in the TUI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forgeml.errors import ValidationError
from forgeml.evaluation import compare, evaluate
from forgeml.registry import evaluations, register_model


def _data(n=1200, seed=0):
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, 4)), columns=["signal", "weak", "noise", "noise2"])
    y = ((2 * x.signal + 0.5 * x.weak + rng.normal(scale=0.5, size=n)) > 0).astype(int)
    return x, y


def test_importance_ranks_the_signal_first_and_is_stored_with_the_evaluation(workspace):
    from sklearn.ensemble import RandomForestClassifier

    x, y = _data()
    model = RandomForestClassifier(n_estimators=40, max_depth=6, random_state=0).fit(x.head(800), y.head(800))
    mv = register_model("rf", model, input_example=x.head(5))
    holdout = x.tail(400).assign(label=y.tail(400).to_numpy())
    result = evaluate(mv.uri, holdout, "label", importance=True)
    table = result.importance["features"]
    assert [r["feature"] for r in table[:2]] == ["signal", "weak"]
    assert result.importance["shap_method"] == "tree" and result.importance["metric"] == "roc_auc"
    by = {r["feature"]: r for r in table}
    # shuffling the signal costs a lot of AUC; shuffling noise costs about nothing
    assert by["signal"]["permutation"] > 0.2 and abs(by["noise"]["permutation"]) < 0.03
    stored = evaluations("rf", mv.version)[0]["result"]["importance"]
    assert stored["features"][0]["feature"] == "signal"


def test_champion_vs_challenger_lines_up_importance_by_feature(workspace):
    from sklearn.linear_model import LogisticRegression

    x, y = _data()
    # the champion never saw the signal (a constant column gets no weight)
    champion = register_model("m", LogisticRegression().fit(x.assign(signal=0.0), y), input_example=x.head(5),
                              background=x)
    challenger = register_model("m", LogisticRegression().fit(x, y), input_example=x.head(5), background=x)
    data = x.assign(label=y.to_numpy())
    result = compare(champion.uri, challenger.uri, data, "label", n_boot=50, importance=True)
    rows = {r["feature"]: r for r in result.importance}
    assert rows["signal"]["challenger_rank"] == 1 and rows["signal"]["champion_rank"] > 1
    assert rows["signal"]["champion_mean_abs_shap"] < 1e-6 < rows["signal"]["challenger_mean_abs_shap"]


def test_importance_for_ranking_is_refused(workspace):
    from sklearn.linear_model import LinearRegression

    x, y = _data(200)
    mv = register_model("rank", LinearRegression().fit(x, y), input_example=x.head(5))
    data = x.assign(label=y.to_numpy(), q=np.arange(200) // 10)
    with pytest.raises(ValidationError, match="ranking"):
        evaluate(mv.uri, data, "label", query_column="q", importance=True)


def test_tui_model_detail_draws_importance_bars():
    from forgeml.tui.screens.models import _importance_lines

    lines = _importance_lines({"metric": "roc_auc", "features": [
        {"feature": "signal", "mean_abs_shap": 0.4, "permutation": 0.3},
        {"feature": "noise", "mean_abs_shap": 0.1, "permutation": 0.0}]})
    assert "roc_auc" in lines[0]
    assert lines[1].count("█") == 20 and lines[2].count("█") == 5


def test_tui_model_detail_shows_calibration_groups_and_weak_slices():
    from forgeml.tui.screens.models import _responsible_lines

    lines = _responsible_lines({
        "calibration": {"brier": 0.12, "ece": 0.04,
                        "curve": {"predicted": [0.1, 0.5, 0.9], "observed": [0.0, 0.5, 1.0]}},
        "fairness": {"g": {"groups": [{"group": 0, "selection_rate": 0.4, "true_positive_rate": 0.8}]}},
        "weak_slices": [{"slice": "region = west", "rows": 40, "mean_loss": 0.9, "overall_loss": 0.3}]})
    assert "Brier 0.120" in lines[0]
    chart = lines[1:-2]
    assert len(chart) >= 6 and any("┤" in line for line in chart) and "\x1b" not in "".join(chart)
    assert "0 0.40/0.80" in lines[-2] and "region = west" in lines[-1]
