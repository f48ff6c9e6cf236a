"""Drift tests and reports: each test flags exactly the injected shifts, with p-values and effect sizes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from forgeml.errors import ConfigError, ForgeError, ValidationError
from forgeml.monitoring import drift_report
from forgeml.plugins.monitors import stattests as st

N = 20_000


def _frames(seed: int = 3) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    cats = np.array(["a", "b", "c", "d"])

    def side(shifted: bool) -> pa.Table:
        emb = rng.normal(0, 1, (2_000, 8))
        emb_moved = emb + (0.5 if shifted else 0.0)
        return pa.table({
            "same": rng.normal(0, 1, N),
            "mean": rng.normal(0.5 if shifted else 0.0, 1, N),
            "scale": rng.normal(0, 2.0 if shifted else 1.0, N),
            "cat_same": cats[rng.choice(4, N, p=[0.4, 0.3, 0.2, 0.1])],
            "cat_changed": cats[rng.choice(4, N, p=[0.1, 0.2, 0.3, 0.4] if shifted else [0.4, 0.3, 0.2, 0.1])],
            "cat_new": np.where(rng.random(N) < (0.3 if shifted else 0.0), "new",
                                cats[rng.choice(4, N, p=[0.4, 0.3, 0.2, 0.1])]),
            "_request_id": [f"r{i}" for i in range(N)],
            "_prediction": rng.normal(0.3 if shifted else 0.0, 1, N),
        }), pa.table({
            "emb_same": pa.array(list(rng.normal(0, 1, (2_000, 8))), pa.list_(pa.float64())),
            "emb_moved": pa.array(list(emb_moved), pa.list_(pa.float64())),
        })

    ref, ref_emb = side(False)
    cur, cur_emb = side(True)
    return (ref, ref_emb), (cur, cur_emb)


@pytest.fixture(scope="module")
def frames():
    return _frames()


@pytest.mark.parametrize("test, expected", [
    ("psi", {"mean", "scale", "cat_changed", "cat_new"}),
    ("ks", {"mean", "scale"}),
    ("jensen_shannon", {"mean", "scale", "cat_changed", "cat_new"}),
    ("chi2", {"cat_changed", "cat_new"}),
])
def test_each_tabular_test_flags_exactly_the_shifted_columns(frames, test, expected):
    (ref, _), (cur, _) = frames
    report = drift_report(ref, cur, tests=[test], workspace=None)
    assert set(report.drifted_columns) == expected
    for col in report.columns:
        for r in col.results:
            assert r.test == test
            assert r.p_value is not None and 0.0 <= r.p_value <= 1.0
            assert r.effect_size is not None
            if col.column in ("same", "cat_same"):
                assert not r.drifted and r.severity == "none"


@pytest.mark.parametrize("test", ["mmd", "centroid"])
def test_embedding_tests_flag_only_the_moved_embedding(frames, test):
    (_, ref), (_, cur) = frames
    report = drift_report(ref, cur, tests=[test])
    assert report.drifted_columns == ["emb_moved"]
    assert report.column("emb_moved").kind == "embedding"


def test_default_report_covers_features_and_prediction_score(frames):
    (ref, _), (cur, _) = frames
    report = drift_report(ref, cur)
    assert set(report.drifted_columns) == {"mean", "scale", "cat_changed", "cat_new"}
    names = {c.column for c in report.columns}
    assert "_request_id" not in names  # request metadata is not a feature
    assert report.prediction is not None and report.prediction.drifted
    assert report.column("cat_new").result("chi2").details["new_categories"]["new"] == pytest.approx(0.3, abs=0.02)
    assert {r.test for r in report.column("mean").results} == {"psi", "ks", "jensen_shannon"}
    assert report.share == pytest.approx(4 / 6)
    frame = report.to_pandas()
    assert {"p_value", "effect_size", "severity"} <= set(frame.columns)
    assert report.to_dict()["drifted_columns"] == report.drifted_columns


def test_large_samples_decide_on_effect_size_not_p_value():
    """At 200k rows a 0.015-sd mean shift is 'significant'; the default still needs a real effect size."""
    rng = np.random.default_rng(5)
    n = 200_000
    ref = pa.table({"tiny": rng.normal(0, 1, n), "none": rng.normal(0, 1, n)})
    cur = pa.table({"tiny": rng.normal(0.015, 1, n), "none": rng.normal(0, 1, n)})
    by_p = drift_report(ref, cur, tests={"ks": {"decide": "p_value", "alpha": 0.05}})
    default = drift_report(ref, cur, tests=["ks"])
    tiny = default.column("tiny").result("ks")
    assert by_p.column("tiny").drifted  # the p-value alone calls a 0.015-sd wobble drift...
    assert tiny.p_value < 0.05 and tiny.effect_size < 0.01
    assert not default.column("tiny").drifted  # ...the effect-size rule does not


def test_psi_thresholds_are_configurable(frames):
    (ref, _), (cur, _) = frames
    default = drift_report(ref, cur, columns=["mean"], tests=["psi"])
    psi = default.column("mean").result("psi")
    assert psi.drifted and psi.severity in ("moderate", "major")
    strict = drift_report(ref, cur, columns=["mean"], tests={"psi": {"threshold": 5.0, "moderate": 5.0, "major": 9.0}})
    assert not strict.column("mean").drifted


def test_statistics_match_scipy():
    from scipy.stats import chi2_contingency, ks_2samp

    rng = np.random.default_rng(11)
    for _ in range(20):
        a = np.round(rng.normal(0, 1, rng.integers(20, 300)), 1)  # rounding makes ties
        b = np.round(rng.normal(0.2, 1.1, rng.integers(20, 300)), 1)
        ours = st.ks(np.sort(a), np.sort(b))
        theirs = ks_2samp(a, b, method="asymp")
        assert ours[0] == pytest.approx(theirs.statistic, abs=1e-12)
        assert ours[1] == pytest.approx(theirs.pvalue, abs=0.05)  # both approximate the two-sample law
    r, c = np.array([50.0, 30, 20]), np.array([30.0, 30, 40])
    stat, p, v, _ = st.chi2_from_counts(r, c)
    expected = chi2_contingency(np.vstack([r, c]), correction=False)
    assert stat == pytest.approx(expected.statistic) and p == pytest.approx(expected.pvalue)
    assert v == pytest.approx(np.sqrt(expected.statistic / 200))


def test_reports_accept_dataframes_and_skip_unsupported_types():
    import pandas as pd

    ref = pd.DataFrame({"x": np.arange(100.0), "when": pd.date_range("2026-01-01", periods=100, tz="UTC"),
                        "code": np.arange(100)})
    cur = ref.assign(code=ref["code"].astype(str))
    report = drift_report(ref, cur)
    assert report.drifted_columns == []
    assert "when" in report.skipped and "do not match" in report.skipped["code"]


def test_bad_inputs_are_clear_errors(frames):
    (ref, _), (cur, _) = frames
    with pytest.raises(ValidationError, match="no rows"):
        drift_report(ref, cur.slice(0, 0))
    with pytest.raises(ValidationError, match="did you mean 'mean'"):
        drift_report(ref, cur, columns=["meen"])
    with pytest.raises(ForgeError, match="did you mean 'psi'"):
        drift_report(ref, cur, tests=["pis"])
    with pytest.raises(ConfigError, match="threshold <= moderate <= major"):
        drift_report(ref, cur, tests={"ks": {"threshold": 0.5, "major": 0.1}})
    with pytest.raises(ConfigError, match="unknown key 'alpah'"):
        drift_report(ref, cur, tests={"ks": {"alpah": 0.1}})
    with pytest.raises(ValidationError, match="Arrow table"):
        drift_report([1, 2, 3], cur)


def test_reference_can_be_a_registered_dataset(workspace):
    from forgeml.datasets import register_dataset

    rng = np.random.default_rng(2)
    train = pa.table({"x": rng.normal(0, 1, 5_000)})
    version = register_dataset("train", train)
    report = drift_report(f"train@v{version.version}", pa.table({"x": rng.normal(1.0, 1, 5_000)}))
    assert report.drifted_columns == ["x"]
