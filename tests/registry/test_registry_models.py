"""Registering and loading real scikit-learn, torch, ONNX and Python-function models; lookups; events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from forgeml import hookimpl
from forgeml.errors import ConfigError, NotFoundError, ValidationError
from forgeml.registry import (
    get_model_version,
    list_versions,
    load_model,
    promote,
    register_model,
    resolve,
    set_alias,
)


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    y = (X.a + 0.5 * X.b + rng.normal(scale=0.3, size=n) > 0).astype(int)
    return X, y


def _sklearn_model():
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    return LogisticRegression().fit(X, y), X, y


def _torch_model(X):
    """A small seeded MLP (weights from the seed: no training needed to test storage and loading)."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))


class TestSklearn:
    def test_register_infers_signature_and_loads_for_every_input_shape(self, workspace):
        model, X, _ = _sklearn_model()
        mv = register_model("churn", model, input_example=X.head(5), metrics={"roc_auc": 0.91}, params={"C": 1.0},
                            tags={"team": "growth"}, description="first", entity_keys=["user_id"])
        assert (mv.version, mv.stage, mv.flavor) == (1, "STAGING", "sklearn")
        assert [c["name"] for c in mv.signature["inputs"]] == ["a", "b", "c"]
        assert mv.signature["outputs"][0]["type"] == "int64"
        loaded = load_model("churn@1")
        expected = model.predict(X)
        assert np.array_equal(loaded.predict(X), expected)
        assert np.array_equal(loaded.predict(pa.Table.from_pandas(X)), expected)
        reordered = X[["c", "a", "b"]]
        assert np.array_equal(loaded.predict(reordered), expected), "columns are taken in signature order"
        row = X.iloc[0].to_dict()
        assert loaded.predict(row).tolist() == expected[:1].tolist()
        assert np.allclose(loaded.predict_proba(X.head(3)), model.predict_proba(X.head(3)))

    def test_skipped_sklearn_checks_still_refuse_missing_values(self, workspace):
        """Finite matrices skip sklearn's per-call checks; a NaN still reaches the estimator's own refusal."""
        model, X, _ = _sklearn_model()
        register_model("strict", model, input_example=X.head(5))
        loaded = load_model("strict@1")
        matrix = X.to_numpy()
        assert np.allclose(loaded.predict_proba(matrix), model.predict_proba(X))
        holed = matrix.copy()
        holed[3, 1] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            loaded.predict_proba(holed)
        with pytest.raises(ValueError, match="NaN"):
            loaded.predict(holed)
        with pytest.raises(ValidationError, match="missing column"):
            loaded.predict(X.drop(columns=["b"]))

    def test_versions_are_content_addressed_and_numbered_per_name(self, workspace):
        model, X, _ = _sklearn_model()
        one = register_model("m", model, input_example=X.head(2))
        two = register_model("m", model, input_example=X.head(2))
        other = register_model("other", model, input_example=X.head(2))
        assert (one.version, two.version, other.version) == (1, 2, 1)
        assert one.artifact_digest == two.artifact_digest == other.artifact_digest
        assert workspace.artifacts.exists(one.artifact_digest)

    def test_register_from_a_saved_file(self, workspace, tmp_path):
        import joblib

        model, X, _ = _sklearn_model()
        joblib.dump(model, tmp_path / "model.pkl")
        mv = register_model("fromfile", path=tmp_path / "model.pkl", flavor="sklearn", run_id="abc123",
                            input_example=X.head(2))
        assert mv.run_id == "abc123"
        assert np.array_equal(load_model(mv).predict(X), model.predict(X))

    def test_register_from_a_runs_artifacts(self, workspace, tmp_path):
        import joblib

        from forgeml.tracking import log_artifact, start_run

        model, X, _ = _sklearn_model()
        (tmp_path / "out").mkdir()
        joblib.dump(model, tmp_path / "out" / "model.joblib")
        with start_run(name="train") as run:
            log_artifact(tmp_path / "out" / "model.joblib", name="model/model.joblib")
        mv = register_model("fromrun", path="model", run_id=run.id, flavor="sklearn", input_example=X.head(2))
        assert mv.run_id == run.id
        assert np.array_equal(load_model("fromrun@1").predict(X), model.predict(X))
        with pytest.raises(NotFoundError, match="no artifact 'weights'"):
            register_model("fromrun", path="weights", run_id=run.id, flavor="sklearn")


class TestTorch:
    @pytest.mark.filterwarnings("ignore:.*quantize_per_tensor:UserWarning")
    def test_pickled_module_round_trips_in_eval_mode(self, workspace):
        X, _ = _data()
        net = _torch_model(X)
        mv = register_model("reg", net, input_example=X.head(4))
        assert mv.flavor == "torch"
        loaded = load_model("reg@latest")
        with torch.no_grad():
            expected = net(torch.tensor(X.to_numpy(), dtype=torch.float32))[:, 0].numpy()
        assert np.allclose(loaded.predict(X), expected, atol=1e-6)
        assert not loaded.module.training
        assert str(loaded.device) == ("cuda:0" if torch.cuda.is_available() else "cpu")
        quantized = load_model("reg@1", device="cpu", quantize=True)
        assert np.corrcoef(quantized.predict(X), expected)[0, 1] > 0.98, "INT8 weights keep the function close"

    def test_torchscript_module(self, workspace):
        X, _ = _data()
        scripted = torch.jit.script(_torch_model(X))
        register_model("scripted", scripted, flavor="torch", input_example=X.head(2))
        loaded = load_model("scripted@1", device="cpu")
        with torch.no_grad():
            expected = scripted(torch.tensor(X.head(3).to_numpy(), dtype=torch.float32))[:, 0].numpy()
        assert np.allclose(loaded.predict(X.head(3)), expected, atol=1e-6)

    def test_unknown_runtime_option(self, workspace):
        X, _ = _data()
        register_model("reg", _torch_model(X), input_example=X.head(2))
        with pytest.raises(NotFoundError, match="did you mean 'quantize'"):
            load_model("reg@1", quantise=True)


def test_onnx_model_converted_from_sklearn(workspace):
    from skl2onnx import to_onnx

    model, X, _ = _sklearn_model()
    onx = to_onnx(model, X.to_numpy().astype(np.float32)[:1], options={id(model): {"zipmap": False}})
    register_model("onnx", onx, flavor="onnx", input_example=X.head(2))
    loaded = load_model("onnx@1")
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert np.allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-5)


def test_python_function(workspace):
    scale = 3.0
    mv = register_model("fn", lambda df: df["a"] * scale + df["b"], input_example=pd.DataFrame({"a": [1.0], "b": [2.0]}))
    assert mv.flavor == "python"
    out = load_model("fn@1").predict(pa.table({"b": [1.0, 0.0], "a": [1.0, 2.0]}))
    assert out.tolist() == [4.0, 6.0]


class TestLookups:
    def test_stage_alias_and_version_references(self, workspace):
        model, X, _ = _sklearn_model()
        for _ in range(3):
            register_model("m", model, input_example=X.head(2))
        promote("m", 2, "production")
        set_alias("m", "champion", 2)
        set_alias("m", "challenger", 3)
        assert resolve("m@production").version == 2
        assert resolve("m@champion").version == 2
        assert resolve("m@v3").version == resolve("m@3").version == 3
        assert resolve("m").version == 3
        assert get_model_version("m", "challenger").aliases == ["challenger"]
        set_alias("m", "champion", 3)
        assert sorted(get_model_version("m", 3).aliases) == ["challenger", "champion"]
        assert [v.stage for v in list_versions("m")] == ["STAGING", "PRODUCTION", "STAGING"]

    def test_bad_references(self, workspace):
        model, X, _ = _sklearn_model()
        register_model("churn", model, input_example=X.head(2))
        with pytest.raises(NotFoundError, match="did you mean 'churn'"):
            resolve("chrun@1")
        with pytest.raises(NotFoundError, match="no version 9"):
            resolve("churn@9")
        with pytest.raises(NotFoundError, match="no version in PRODUCTION"):
            resolve("churn@production")
        with pytest.raises(NotFoundError, match="unknown version reference"):
            resolve("churn@champion")
        with pytest.raises(ValidationError, match="invalid alias"):
            set_alias("churn", "production", 1)
        with pytest.raises(ValidationError, match="invalid model name"):
            register_model("bad name", model)
        with pytest.raises(ConfigError, match="unknown runtime 'sklern'.*did you mean 'sklearn'"):
            register_model("churn", model, flavor="sklern")
        with pytest.raises(ValidationError, match="exactly one of"):
            register_model("churn", flavor="sklearn")
        with pytest.raises(NotFoundError, match="no dataset|unknown dataset"):
            register_model("churn", model, datasets=["nope@v1"])
        assert [v.version for v in list_versions("churn")] == [1], "failed registrations add no version"


class StageRecorder:
    """A throwaway plugin recording what the registry announces and what was committed at that moment."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def forgeml_on_model_stage_changed(self, model_version, old_stage, new_stage, reason, workspace):
        committed = workspace.metadata.query("SELECT stage FROM registry_versions WHERE name = ? AND version = ?",
                                             (model_version.name, model_version.version))[0]["stage"]
        self.seen.append((model_version.version, old_stage, new_stage, committed))

    @hookimpl
    def forgeml_on_model_version_registered(self, model_version, workspace):
        self.seen.append((model_version.version, None, "registered", model_version.stage))


def test_events_fire_after_commit(workspace):
    recorder = StageRecorder()
    workspace.plugins.pm.register(recorder, name="stage_recorder")
    try:
        model, X, _ = _sklearn_model()
        register_model("m", model, input_example=X.head(2))
        register_model("m", model, input_example=X.head(2))
        promote("m", 1, "production", reason="first")
        promote("m", 2, "production")
    finally:
        workspace.plugins.pm.unregister(recorder)
    assert recorder.seen == [
        (1, None, "registered", "STAGING"), (2, None, "registered", "STAGING"),
        (1, "STAGING", "PRODUCTION", "PRODUCTION"),
        (1, "PRODUCTION", "ARCHIVED", "ARCHIVED"), (2, "STAGING", "PRODUCTION", "PRODUCTION"),
    ]
