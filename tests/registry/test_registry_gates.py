"""Promotion through every built-in gate (passing and failing), audit records, rollback and archive."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forgeml.datasets import register_dataset
from forgeml.errors import ConfigError, GateFailedError, NotFoundError, ValidationError
from forgeml.evaluation import evaluate
from forgeml.registry import (
    approve,
    archive,
    audit_trail,
    gate_results,
    get_model_version,
    load_model,
    promote,
    register_model,
    rollback,
)
from forgeml.workspace import Workspace, set_current


def _configure(workspace, gates_toml: str) -> Workspace:
    """Append [registry.models.churn] to plugins.toml and reopen the workspace."""
    path = workspace.root / "plugins.toml"
    base = path.read_text().split("\n[registry.models.churn]")[0]
    path.write_text(base + "\n[registry.models.churn]\ngates = [\n" + gates_toml + "\n]\n")
    ws = Workspace(workspace.root)
    set_current(ws)
    return ws


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    y = (X.a + X.b + rng.normal(scale=0.5, size=n) > 0).astype(int)
    return X, y


def _models():
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    good = LogisticRegression().fit(X, y)
    weak = LogisticRegression().fit(X.assign(a=0.0, b=X.b * 0 + np.random.default_rng(1).normal(size=len(X))), y)
    return good, weak, X, y


def _eval_set(ws):
    X, y = _data(300, seed=5)
    return register_dataset("holdout", X.assign(label=y), workspace=ws).ref


def test_metric_threshold_and_no_regression(workspace):
    ws = _configure(workspace, """
        { gate = "metric_threshold", metric = "roc_auc", min = 0.6 },
        { gate = "no_regression", metric = "roc_auc", tolerance = 0.01 },
    """)
    good, weak, X, _ = _models()
    holdout = _eval_set(ws)
    register_model("churn", good, input_example=X.head(2), workspace=ws)
    register_model("churn", weak, input_example=X.head(2), workspace=ws)
    register_model("churn", good, input_example=X.head(2), metrics={"roc_auc": 0.5}, workspace=ws)

    with pytest.raises(GateFailedError, match="has no metric 'roc_auc'"):
        promote("churn", 1, "production", workspace=ws)
    evaluate("churn@1", holdout, "label", workspace=ws)
    first = promote("churn", 1, "production", actor="alice", reason="first model", workspace=ws)
    assert [g.passed for g in first.gates] == [True, True]
    assert "no production version" in first.gates[1].message

    evaluate("churn@2", holdout, "label", workspace=ws)
    with pytest.raises(GateFailedError) as err:
        promote("churn", 2, "production", actor="bob", workspace=ws)
    assert "no_regression(roc_auc)" in str(err.value) and "1 of 2 gates failed" in str(err.value)
    assert get_model_version("churn", 1, workspace=ws).stage == "PRODUCTION"
    assert get_model_version("churn", 2, workspace=ws).stage == "STAGING"
    recorded = gate_results("churn", 2, workspace=ws)
    assert {(r["gate"], r["passed"]) for r in recorded} == {("metric_threshold(roc_auc)", True),
                                                            ("no_regression(roc_auc)", False)}
    refused = [a for a in audit_trail("churn", workspace=ws) if a["action"] == "model.promote_refused"]
    assert refused[-1]["actor"] == "bob" and refused[-1]["detail"]["to"] == "PRODUCTION"

    # v3's registered roc_auc 0.5 fails the threshold; the no-regression gate evaluates production itself
    with pytest.raises(GateFailedError, match="below the minimum 0.6"):
        promote("churn", 3, "production", workspace=ws)
    evaluate("churn@3", holdout, "label", workspace=ws)
    result = promote("churn", 3, "production", workspace=ws)
    assert result.archived.version == 1 and result.archived.stage == "ARCHIVED"
    assert load_model("churn@1", workspace=ws).predict(X.head(2)).shape == (2,), "archived stays loadable"


def test_approvals_gate(workspace):
    ws = _configure(workspace, '{ gate = "approvals", reviewers = ["alice", "bob"] },')
    good, _, X, _ = _models()
    register_model("churn", good, input_example=X.head(2), workspace=ws)
    approve("churn", 1, reviewer="alice", workspace=ws)
    approve("churn", 1, reviewer="mallory", workspace=ws)
    with pytest.raises(GateFailedError, match="1 of 2 approvals; waiting for bob"):
        promote("churn", 1, "production", workspace=ws)
    approve("churn", 1, reviewer="bob", comment="looks good", workspace=ws)
    assert promote("churn", 1, "production", workspace=ws).model_version.stage == "PRODUCTION"


def test_command_gate_and_stage_filter(workspace):
    ws = _configure(workspace, """
        { gate = "command", run = "test \\"$FORGEML_MODEL_VERSION\\" = 2" },
        { gate = "command", run = "echo integration failed >&2; exit 3", stages = ["CANDIDATE"] },
    """)
    good, _, X, _ = _models()
    register_model("churn", good, input_example=X.head(2), workspace=ws)
    register_model("churn", good, input_example=X.head(2), workspace=ws)
    with pytest.raises(GateFailedError, match="exited with 1"):
        promote("churn", 1, "production", workspace=ws)
    with pytest.raises(GateFailedError, match="exited with 3: integration failed"):
        promote("churn", 2, "candidate", workspace=ws)
    result = promote("churn", 2, "production", workspace=ws)
    assert result.model_version.stage == "PRODUCTION"
    assert len(result.gates) == 1, "the CANDIDATE-only gate does not run for PRODUCTION"


def test_gate_configuration_errors(workspace):
    """A misnamed gate or gate setting fails when the workspace opens, before any promotion."""
    good, _, X, _ = _models()
    register_model("churn", good, input_example=X.head(2), workspace=workspace)
    with pytest.raises(ConfigError, match=r"\[registry.models.churn\] gates\[0\].*did you mean 'metric_threshold'"):
        _configure(workspace, '{ gate = "metric_treshold", metric = "roc_auc" },')
    with pytest.raises(ConfigError, match="unknown key 'metrc'"):
        _configure(workspace, '{ gate = "metric_threshold", metrc = "roc_auc" },')
    assert get_model_version("churn", 1, workspace=workspace).stage == "STAGING"


def test_rollback_restores_previous_production_in_order(workspace):
    good, _, X, _ = _models()
    for _ in range(3):
        register_model("m", good, input_example=X.head(2))
    with pytest.raises(NotFoundError, match="no version in PRODUCTION"):
        rollback("m")
    promote("m", 1, "production")
    with pytest.raises(NotFoundError, match="no earlier production version"):
        rollback("m")
    promote("m", 2, "production")
    promote("m", 3, "production")
    back = rollback("m", actor="oncall", reason="latency spike")
    assert back.model_version.version == 2 and back.archived.version == 3
    assert rollback("m").model_version.version == 1
    stages = {v: get_model_version("m", v).stage for v in (1, 2, 3)}
    assert stages == {1: "PRODUCTION", 2: "ARCHIVED", 3: "ARCHIVED"}
    rollbacks = [a for a in audit_trail("m") if a["action"] == "model.rollback"]
    assert rollbacks[0]["actor"] == "oncall" and rollbacks[0]["detail"]["reason"] == "latency spike"
    with pytest.raises(NotFoundError, match="unknown model 'n'; choices: m"):
        rollback("n")


def test_archive_and_invalid_moves(workspace):
    good, _, X, _ = _models()
    register_model("m", good, input_example=X.head(2))
    promote("m", 1, "production")
    archive("m", 1, reason="retired")
    assert get_model_version("m", 1).stage == "ARCHIVED"
    with pytest.raises(ValidationError, match="already in ARCHIVED"):
        archive("m", 1)
    with pytest.raises(NotFoundError, match="unknown stage 'prod'"):
        promote("m", 1, "prod")
    trail = audit_trail("m")
    assert [(a["detail"].get("from"), a["detail"].get("to")) for a in trail if a["action"] == "model.stage"] == [
        ("STAGING", "PRODUCTION"), ("PRODUCTION", "ARCHIVED")]


def test_a_lower_scoring_version_that_passes_says_it_is_within_the_tolerance(workspace):
    ws = _configure(workspace, """
        { gate = "no_regression", metric = "roc_auc", tolerance = 0.5 },
    """)
    good, weak, X, _ = _models()
    holdout = _eval_set(ws)
    register_model("churn", good, input_example=X.head(2), workspace=ws)
    register_model("churn", weak, input_example=X.head(2), workspace=ws)
    for version in (1, 2):
        evaluate(f"churn@{version}", holdout, "label", workspace=ws)
    promote("churn", 1, "production", workspace=ws)
    result = promote("churn", 2, "production", workspace=ws)
    (gate,) = result.gates
    assert gate.passed and "worse by " in gate.message and "within the tolerance 0.5" in gate.message
    assert f"on {holdout}" in gate.message
