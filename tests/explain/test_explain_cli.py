"""`forgeml explain` and `models register --background` through the real CLI."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from forgeml.cli import cli, main


def _run(*args):
    """Invoke the CLI in-process; fail with its output when it exits non-zero."""
    outcome = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert not outcome.exit_code, outcome.output
    return outcome.output


@pytest.fixture
def files(workspace, tmp_path):
    """Rows, a three-row example and a fitted ridge regression saved with joblib."""
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    y = 4 * df.a - df.c
    df.to_parquet(tmp_path / "rows.parquet")
    df.head(3).to_csv(tmp_path / "example.csv", index=False)
    joblib.dump(Ridge(alpha=1e-6).fit(df, y), tmp_path / "model.joblib")
    return tmp_path


def test_register_with_background_then_explain_a_file(files):
    _run("models", "register", "ridge", str(files / "model.joblib"), "--flavor", "sklearn",
         "--example", str(files / "example.csv"), "--background", str(files / "rows.parquet"))
    out = json.loads(_run("explain", "ridge@1", "--input", str(files / "rows.parquet"), "--output",
                          str(files / "why.parquet"), "--top-k", "1", "--json"))
    assert (out["rows"], out["method"]) == (300, "linear")
    assert [t["feature"] for t in out["top_features"][:2]] == ["a", "c"]
    why = pq.read_table(files / "why.parquet").to_pandas()
    assert list(why.columns[-5:]) == ["base_value", "shap_a", "shap_b", "shap_c", "reason_1"]
    # coefficient x (x - background mean): the offset is the same for every row
    assert np.ptp(4 * why.a - why.shap_a) < 1e-6 and np.ptp(-why.c - why.shap_c) < 1e-6
    largest = why[["shap_a", "shap_b", "shap_c"]].abs().idxmax(axis=1).str.removeprefix("shap_")
    assert (why.reason_1 == largest).all()
    text = _run("explain", "ridge@1", "--input", str(files / "rows.parquet"))
    assert "explained 300 rows with ridge v1 (linear)" in text


def test_explain_errors_print_one_line(files, capsys):
    _run("models", "register", "bare", str(files / "model.joblib"), "--flavor", "sklearn")
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", "bare@1", "--input", str(files / "rows.parquet")])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "background" in err and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["explain", "bare@1", "--input", str(files / "missing.parquet")])
    assert "missing.parquet" in capsys.readouterr().err
