"""The datasets, models and evaluate command groups, driven through the real CLI with --json."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from forgeml.cli import cli, main


def _run(*args, code=0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def files(workspace, tmp_path):
    import joblib
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(200, 2)), columns=["a", "b"])
    df["region"] = rng.choice(["n", "s"], 200)
    df["label"] = (df.a + df.b > 0).astype(int)
    data = tmp_path / "data"
    data.mkdir()
    df.to_parquet(data / "part.parquet")
    df[["a", "b"]].head(3).to_csv(tmp_path / "example.csv", index=False)
    joblib.dump(LogisticRegression().fit(df[["a", "b"]], df.label), tmp_path / "model.joblib")
    (tmp_path / "suite.json").write_text(json.dumps([{"expect": "not_null", "column": "a"},
                                                     {"expect": "range", "column": "a", "min": 0}]))
    return tmp_path


def test_datasets_commands(files):
    reg = json.loads(_run("datasets", "register", "sales", str(files / "data"), "--json"))
    assert reg["ref"] == "sales@v1" and reg["num_rows"] == 200
    assert json.loads(_run("datasets", "ls", "--json"))[0]["name"] == "sales"
    shown = json.loads(_run("datasets", "show", f"sales@{reg['digest'][:8]}", "--json"))
    assert shown["lineage"]["files"][0]["path"] == "part.parquet"
    _run("datasets", "register", "sales", "--query", f"SELECT * FROM '{files / 'data' / 'part.parquet'}' LIMIT 50")
    diff = json.loads(_run("datasets", "diff", "sales@v1", "sales@v2", "--json"))
    assert diff["rows"] == [200, 50]
    report = json.loads(_run("datasets", "validate", "sales@v1", "--suite", str(files / "suite.json"), "--json",
                             code=1))
    assert [r["passed"] for r in report["results"]] == [True, False]


def test_models_and_evaluate_commands(files):
    _run("datasets", "register", "sales", str(files / "data"))
    for _ in range(2):
        reg = json.loads(_run("models", "register", "clf", str(files / "model.joblib"), "--flavor", "sklearn",
                              "--example", str(files / "example.csv"), "--metric", "roc_auc=0.9",
                              "--dataset", "sales@v1", "--json"))
    assert reg["version"] == 2 and reg["datasets"] == ["sales@v1"]
    ev = json.loads(_run("evaluate", "clf@2", "sales@v1", "--target", "label", "--slice", "region", "--json"))
    assert ev["metrics"]["accuracy"] > 0.9 and {s["value"] for s in ev["slices"]["region"]} == {"n", "s"}
    cmp = json.loads(_run("evaluate", "clf@1", "sales@v1", "--target", "label", "--challenger", "clf@2",
                          "--n-boot", "50", "--json"))
    assert cmp["metrics"][0]["champion"] == cmp["metrics"][0]["challenger"]
    approved = json.loads(_run("models", "approve", "clf", "2", "--reviewer", "alice", "--json"))
    assert approved["reviewer"] == "alice"
    _run("models", "promote", "clf", "1", "--reason", "first")
    moved = json.loads(_run("models", "promote", "clf", "2", "--actor", "bob", "--json"))
    assert moved["archived"]["version"] == 1 and moved["model_version"]["stage"] == "PRODUCTION"
    assert json.loads(_run("models", "alias", "clf", "champion", "2", "--json"))["aliases"] == ["champion"]
    shown = json.loads(_run("models", "show", "clf@champion", "--json"))
    assert shown["evaluations"][0]["dataset"] == "sales@v1" and shown["approvals"][0]["reviewer"] == "alice"
    assert [a["actor"] for a in shown["audit"] if a["action"] == "model.stage"] == ["bob"]
    back = json.loads(_run("models", "rollback", "clf", "--reason", "bad latency", "--json"))
    assert back["model_version"]["version"] == 1
    assert "clf@1  stage PRODUCTION" in _run("models", "show", "clf@production")
    assert json.loads(_run("models", "ls", "--json"))[0]["production"] == 1
    _run("models", "archive", "clf", "1", "--reason", "retired")
    versions = json.loads(_run("models", "ls", "clf", "--json"))
    assert [v["stage"] for v in versions] == ["ARCHIVED", "ARCHIVED"]


def test_user_errors_print_one_line(files, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["models", "promote", "nope", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("forgeml: error: unknown model 'nope'") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["models", "register", "clf", str(files / "model.joblib"), "--flavor", "sklearn", "--metric", "auc"])
    assert "write KEY=VALUE" in capsys.readouterr().err


def test_models_ls_and_the_tui_show_the_newest_evaluation_named_by_dataset(workspace):
    """`models ls`, the TUI and the quickstart summary read one rule: the newest evaluation, named by its
    dataset, over the metrics given at registration (which here disagree on purpose)."""
    from sklearn.dummy import DummyClassifier

    from forgeml.registry import headline, record_evaluation, register_model
    from forgeml.tui import data as tui_data

    model = DummyClassifier().fit(np.zeros((2, 1)), [0, 1])
    mv = register_model("fraud", model, metrics={"roc_auc": 0.7}, workspace=workspace)
    assert headline(mv, workspace) == {"metrics": {"roc_auc": 0.7}, "dataset": None, "source": "registered metrics"}
    assert "roc_auc=0.7 (registered)" in _run("models", "ls", "fraud", "--format", "csv")
    record_evaluation("fraud", 1, "old_holdout@v1", "y", "classification", {"roc_auc": 0.8}, {}, workspace)
    record_evaluation("fraud", 1, "fraud_holdout@v1", "y", "classification", {"roc_auc": 0.91234, "pr_auc": 0.4},
                      {}, workspace)
    shown = "pr_auc=0.4 roc_auc=0.9123 on fraud_holdout@v1"
    assert shown in _run("models", "ls", "fraud", "--format", "csv")
    [row] = tui_data.models(workspace)
    assert row["evaluation"] == shown
    listed = json.loads(_run("models", "ls", "fraud", "--json"))
    assert listed[0]["headline"]["dataset"] == "fraud_holdout@v1"
    assert listed[0]["headline"]["metrics"]["roc_auc"] == 0.91234
