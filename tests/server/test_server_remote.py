"""The Python API and CLI with FORGEML_URL set: the same calls, answered by the server, with the same results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression


@pytest.fixture
def remote_env(platform: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point the Python API at the server, from a folder that is no workspace."""
    from forgeml.workspace import set_current

    ws, server, tokens = platform
    monkeypatch.setenv("FORGEML_URL", server.url)
    monkeypatch.setenv("FORGEML_TOKEN", tokens["scientist"])
    monkeypatch.delenv("FORGEML_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    set_current(None)
    yield ws, server, tokens
    set_current(ws)


def test_tracking_through_the_server_matches_the_files(remote_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ws, server, tokens = remote_env
    import forgeml

    for lr in (0.1, 0.2):
        with forgeml.start_run(name=f"remote-{lr}", experiment="remote-exp", tags={"via": "http"}) as run:
            forgeml.log_params({"lr": lr})
            for step in range(2000):  # buffered and sent in batches by a background thread
                forgeml.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 2000 * lr * 5}, step=step)
            forgeml.log_text("hello", "notes/readme.txt")
        assert run.status == "FINISHED"
    remote = forgeml.search_runs("metrics.acc > 0.3 order by params.lr desc", experiments=["remote-exp"])
    from forgeml.tracking import search_runs
    from forgeml.tracking.store import tracking_store

    local = search_runs("metrics.acc > 0.3 order by params.lr desc", experiments=["remote-exp"], workspace=ws)
    pd.testing.assert_frame_equal(remote.reset_index(drop=True), local.reset_index(drop=True), check_dtype=False)
    assert list(remote["params.lr"]) == ["0.2", "0.1"]
    assert tracking_store(ws).count_points(run.id) == 4000
    assert forgeml.tracking.get_run(run.id).metrics["loss"] == pytest.approx(1 / 2000)


def test_registry_and_jobs_through_the_server(remote_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ws, server, tokens = remote_env
    import forgeml
    from forgeml.errors import PermissionDeniedError
    from forgeml.jobs import JobSpec, cancel, get_job

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    mv = forgeml.register_model("remote-model", model, metrics={"auc": 0.8})
    assert (mv.name, mv.stage, mv.flavor) == ("remote-model", "STAGING", "sklearn")
    with pytest.raises(PermissionDeniedError, match="models.release"):
        forgeml.promote("remote-model", mv.version, "production")  # a scientist may not release
    monkeypatch.setenv("FORGEML_TOKEN", tokens["approver"])
    result = forgeml.promote("remote-model", mv.version, "production", reason="remote")
    assert result.model_version.stage == "PRODUCTION"
    from forgeml.registry import get_model_version, load_model

    assert get_model_version("remote-model", "production").version == mv.version
    loaded = load_model("remote-model@production", workspace=ws)  # the uploaded bytes are the model
    assert list(loaded.predict(pd.DataFrame({"x0": [0.0, 3.0]}))) == [0, 1]
    monkeypatch.setenv("FORGEML_TOKEN", tokens["scientist"])
    job = forgeml.submit(JobSpec(command=["python", "-c", "print(1)"], name="remote-job"))
    assert job.state == "PENDING"
    assert get_job(job.id).name == "remote-job"
    assert cancel(job.id).state == "CANCELLED"
    from forgeml.jobs import get_job as local_get

    assert local_get(job.id, ws).state == "CANCELLED"


def test_cli_talks_to_the_server(remote_env: Any, tmp_path: Path) -> None:
    ws, server, tokens = remote_env
    from forgeml.registry import register_model

    register_model("cli-model", LogisticRegression().fit([[0.0], [1.0]], [0, 1]), workspace=ws)
    env = {**os.environ, "FORGEML_URL": server.url, "FORGEML_TOKEN": tokens["viewer"]}
    denied = subprocess.run([sys.executable, "-m", "forgeml", "models", "promote", "cli-model", "1"],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert denied.returncode == 2 and "models.release" in denied.stderr and "Traceback" not in denied.stderr
    env["FORGEML_TOKEN"] = tokens["approver"]
    done = subprocess.run([sys.executable, "-m", "forgeml", "models", "promote", "cli-model", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "cli-model@1: STAGING -> PRODUCTION" in done.stdout
    env["FORGEML_URL"] = "http://127.0.0.1:9"  # nothing listens there
    down = subprocess.run([sys.executable, "-m", "forgeml", "models", "promote", "cli-model", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert down.returncode == 2 and "unreachable" in down.stderr


def test_inputs_history_and_artifacts_through_the_server(remote_env: Any, tmp_path: Path) -> None:
    ws, server, tokens = remote_env
    import forgeml
    from forgeml import tracking
    from forgeml.errors import NotFoundError, ValidationError

    with forgeml.start_run(name="remote-reads", experiment="remote-exp") as run:
        tracking.log_input(dataset="cards@v3", feature_view="activity@2")
        with pytest.raises(ValidationError, match="at least one reference"):
            tracking.log_input()
        for step in range(50):
            forgeml.log_metric("loss", 1.0 / (step + 1), step=step)
        forgeml.log_text("a", "out/a.txt")
        forgeml.log_text("b", "out/deep/b.txt")
        forgeml.log_text("c", "model.txt")
    assert {(i["kind"], i["ref"]) for i in tracking.get_run(run.id, workspace=ws).inputs} == {
        ("dataset", "cards@v3"), ("feature_view", "activity@2")}
    remote = tracking.get_metric_history(run.id, "loss")
    local = tracking.get_metric_history(run.id, "loss", workspace=ws)
    pd.testing.assert_frame_equal(remote, local)
    assert len(remote) == 50 and remote["value"].iloc[-1] == 1 / 50
    assert tracking.list_artifacts(run.id) == tracking.list_artifacts(run.id, workspace=ws)
    files = tracking.download_artifacts(run.id, tmp_path / "all")
    assert sorted(p.relative_to(tmp_path / "all").as_posix() for p in files) == [
        "model.txt", "out/a.txt", "out/deep/b.txt"]
    [one] = tracking.download_artifacts(run.id, tmp_path / "one", "out/deep")
    assert one.read_text() == "b"
    with pytest.raises(NotFoundError, match="no artifact 'nope'"):
        tracking.download_artifacts(run.id, tmp_path / "none", "nope")
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").iterdir())
    with pytest.raises(ValidationError):
        tracking.download_artifacts(run.id, tmp_path / "x", "../etc")
