"""A seeded workspace for driving the terminal UI: runs, a queued job, and a model whose gate fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgeml.workspace import Workspace, set_current

GATES = """
[registry.models.fraud]
gates = [{ gate = "metric_threshold", metric = "roc_auc", min = 0.99 }]
"""


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A workspace with three finished runs, one pending job and a registered model that cannot pass its gate."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import forgeml
    from forgeml.jobs import JobSpec, submit
    from forgeml.registry import register_model

    root = tmp_path / "ws"
    Workspace.init(root)
    with open(root / "plugins.toml", "a") as f:
        f.write(GATES)
    ws = Workspace(root)
    monkeypatch.setenv("FORGEML_HOME", str(root))
    monkeypatch.setenv("FORGEML_ACTOR", "alice")
    monkeypatch.chdir(root)
    set_current(ws)
    for i, lr in enumerate((0.1, 0.01, 0.001)):
        with forgeml.start_run(name=f"baseline-{i}", experiment="fraud"):
            forgeml.log_params({"lr": lr, "layers": 2})
            for step in range(5):
                forgeml.log_metric("val_loss", (1 + i) / (step + 1), step=step)
    forgeml.flush()
    (root / "train.py").write_text("print('training')\n")
    submit(JobSpec(script="train.py", name="train-fraud"), workspace=ws)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    register_model("fraud", model=model, flavor="sklearn", metrics={"roc_auc": 0.71}, workspace=ws)
    yield ws
    set_current(None)
    ws.close()
