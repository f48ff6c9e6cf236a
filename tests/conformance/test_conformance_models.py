"""Every registered model runtime and promotion gate runs its layer's conformance suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from forgeml.testing import ModelRuntimeSuite, PromotionGateSuite
from forgeml.testing.process import ProviderOpener, registered


def _frame() -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    return pd.DataFrame({"x1": rng.normal(size=64), "x2": rng.normal(size=64)})


def weighted_sum(inputs: Any) -> Any:
    """The python-flavor example: a plain function of the batch."""
    import pandas as pd

    frame = inputs if isinstance(inputs, pd.DataFrame) else inputs.to_pandas()
    return (2.0 * frame["x1"] - frame["x2"]).to_numpy()


def _sklearn_model(frame: Any) -> Any:
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(frame, weighted_sum(frame) + 0.5)


def _example(flavor: str) -> tuple[Any, Any, Any]:
    frame = _frame()
    if flavor == "python":
        return weighted_sum, frame, weighted_sum(frame)
    if flavor == "sklearn":
        model = _sklearn_model(frame)
        return model, frame, model.predict(frame)
    if flavor == "onnx":
        from skl2onnx import to_onnx

        model = _sklearn_model(frame)
        onx = to_onnx(model, frame.to_numpy().astype("float32")[:1])
        return onx.SerializeToString(), frame.astype("float32"), model.predict(frame)
    if flavor == "torch":
        import torch

        torch.manual_seed(0)
        module = torch.nn.Linear(2, 1)
        with torch.no_grad():
            expected = module(torch.tensor(frame.to_numpy(), dtype=torch.float32))[:, 0].numpy()
        return module, frame, expected
    pytest.fail(f"no example model for runtime {flavor!r}: add one to tests/conformance/test_conformance_models.py")


class TestRuntimes(ModelRuntimeSuite):
    """Every runtime, on a small model of its flavor."""

    @pytest.fixture(params=registered("runtimes"))
    def open_runtime(self, request: pytest.FixtureRequest, tmp_path: Path) -> ProviderOpener:
        return ProviderOpener(str(tmp_path / "ws"), "runtimes", request.param)

    @pytest.fixture
    def example(self, open_runtime: ProviderOpener) -> tuple[Any, Any, Any]:
        return _example(open_runtime.name)


GATE_SETTINGS: dict[str, dict[str, Any]] = {
    "metric_threshold": {"metric": "auc", "min": 0.8},
    "no_regression": {"metric": "auc", "dataset": "holdout@v1"},
    "approvals": {"reviewers": ["alice"]},
    "command": {"run": 'test "$FORGEML_MODEL_VERSION" != 3'},
    "fairness": {"column": "g", "max_group_drop": 0.05, "max_demographic_parity_difference": 0.1},
    "calibration": {"max_ece": 0.05},
    "robustness": {"metric": "auc", "max_drop": 0.05},
    "replay": {"min_decision_agreement": 0.9, "min_requests": 20, "outcome": ""},
}


def reversed_sum(inputs: Any) -> Any:
    """A version that answers the recorded traffic differently from production (for the replay gate)."""
    return -weighted_sum(inputs) + 7.0


def _record_traffic(workspace: Any) -> None:
    """Log 40 requests answered by production (weighted_sum) through serving's prediction logger."""
    import datetime as dt

    import pandas as pd

    from forgeml.serving.predlog import PredictionLogger, log_root

    logger = PredictionLogger(log_root(workspace))
    for i in range(40):
        row = pd.DataFrame({"x1": [i / 4], "x2": [1.0 - i / 8]})
        logger.log("churn", 1, "primary", f"r{i}", dt.datetime.now(dt.UTC), 1.0, row.to_dict("list"),
                   weighted_sum(row).tolist(), 1)
    logger.close()


def _report(tpr_b: float, parity: float, ece: float, auc_change: float) -> dict[str, Any]:
    """The fairness, calibration and robustness parts of a stored evaluation result."""
    groups = [{"group": "a", "true_positive_rate": 0.8}, {"group": "b", "true_positive_rate": tpr_b}]
    return {"fairness": {"g": {"groups": groups, "demographic_parity_difference": parity}},
            "calibration": {"ece": ece, "brier": 0.1},
            "robustness": {"perturbations": {"noise": {"change": {"auc": auc_change}}}}}


# production (v1), a version fair, calibrated and robust (v2), and one that is none of these (v3)
REPORTS = [_report(0.8, 0.02, 0.02, -0.01), _report(0.79, 0.03, 0.03, -0.02), _report(0.5, 0.3, 0.2, -0.2)]


class TestGates(PromotionGateSuite):
    """Every gate: version 2 (better than production version 1, approved) passes, version 3 is blocked."""

    @pytest.fixture(params=registered("gates"))
    def cases(self, request: pytest.FixtureRequest, workspace: Any) -> tuple[Any, Any, Any]:
        from forgeml.config import build_settings
        from forgeml.registry import approve, record_evaluation, register_model
        from forgeml.registry.promotion import PromotionContext

        name = request.param
        if name not in GATE_SETTINGS:
            pytest.fail(f"no settings for gate {name!r}: add them to GATE_SETTINGS")
        functions = [weighted_sum, weighted_sum, reversed_sum if name == "replay" else weighted_sum]
        versions = [register_model("churn", fn, metrics={"auc": auc}, workspace=workspace)
                    for fn, auc in zip(functions, (0.85, 0.9, 0.6), strict=True)]
        if name == "replay":
            _record_traffic(workspace)
        for mv, report in zip(versions, REPORTS):
            record_evaluation("churn", mv.version, "holdout@v1", "y", "binary", {"auc": mv.metrics["auc"]}, report,
                              workspace=workspace)
        approve("churn", 2, reviewer="alice", workspace=workspace)
        provider = workspace.plugins.provider("gates", name)
        gate = provider.factory(build_settings(provider.settings, GATE_SETTINGS[name], name), workspace)

        def context(mv: Any) -> Any:
            return PromotionContext(workspace, mv, "PRODUCTION", versions[0], "tester")

        return gate, context(versions[1]), context(versions[2])
