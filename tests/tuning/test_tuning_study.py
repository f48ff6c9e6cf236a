"""Tuning end to end: real Optuna studies whose trials are real scheduler jobs in this workspace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forgeml.errors import ForgeError, ValidationError
from forgeml.tuning import TuneConfig, list_studies, parse_space, study_trials, tune
from forgeml.workspace import Workspace, set_current

SKLEARN_TRAIN = """
import forgeml
import numpy as np
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error

p = forgeml.trial_params()
rng = np.random.default_rng(0)
X = rng.normal(size=(400, 8))
y = X @ rng.normal(size=8) + rng.normal(scale=0.5, size=400)
model = Ridge(alpha=p["alpha"]).fit(X[:300], y[:300])
with forgeml.start_run():
    forgeml.log_metric("val_loss", float(mean_squared_error(y[300:], model.predict(X[300:]))))
"""

STEPS_TRAIN = """
import time, forgeml
p = forgeml.trial_params()
with forgeml.start_run():
    for step in range(12):
        loss = abs(p["x"] - 1.0) + 1.0 / (step + 1)
        forgeml.report(loss, step)
        if forgeml.should_prune():
            raise forgeml.TrialPruned()
        time.sleep(0.15)
    forgeml.log_metric("val_loss", loss)
"""

GPU_TRAIN = """
import os, time, json, forgeml
start = time.time()
time.sleep(0.6)
with open(os.environ["OUT"], "a") as f:
    f.write(json.dumps({"gpus": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start, "end": time.time()}) + "\\n")
with forgeml.start_run():
    forgeml.log_metric("val_loss", forgeml.trial_params()["x"] ** 2)
"""


def _space(**params: dict) -> object:
    return parse_space(params)


@pytest.fixture
def gpu_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A workspace whose scheduler sees two declared GPUs (a fake inventory: no GPU exists here)."""
    root = tmp_path / "ws"
    Workspace.init(root)
    with open(root / "plugins.toml", "a") as f:
        f.write('\n[scheduler.inventory]\nplugin = "declared"\ncount = 2\n')
    text = (root / "plugins.toml").read_text()
    # the default file already has a [scheduler.inventory] table; keep the last one only
    head, _, tail = text.rpartition("\n[scheduler.inventory]\n")
    head = head.replace('[scheduler.inventory]\nplugin = "nvml"\n', "")
    (root / "plugins.toml").write_text(head + "\n[scheduler.inventory]\n" + tail)
    ws = Workspace(root)
    monkeypatch.setenv("FORGEML_HOME", str(root))
    monkeypatch.chdir(root)
    set_current(ws)
    yield ws
    set_current(None)
    ws.close()


def test_sklearn_study_improves_over_first_trial(workspace):
    (workspace.root / "train.py").write_text(SKLEARN_TRAIN)
    space = _space(alpha={"type": "float", "low": 1e-3, "high": 1e4, "log": True})
    heard = []
    result = tune(TuneConfig(script="train.py", space=space, trials=6, parallel=2, sampler="random", seed=4,
                             pruner="none", study_name="ridge"), workspace=workspace,
                  progress=lambda done, total, running: heard.append((done, total, running)))
    trials = study_trials("ridge", workspace=workspace).sort_values("number")
    assert result.complete == 6 and result.failed == 0
    # progress: trials done of the total, never more than 2 running, counting up to all done
    assert heard[0] == (0, 6, 2) and heard[-1] == (6, 6, 0)
    assert all(total == 6 and running <= 2 for _, total, running in heard)
    assert [done for done, _, _ in heard] == sorted(done for done, _, _ in heard)
    assert result.best_value < trials["value"].iloc[0]
    assert result.best_value == pytest.approx(trials["value"].min())
    # every trial is a child run of the study's run
    from forgeml.tracking import get_run

    for run_id in trials["run_id"]:
        assert get_run(run_id, workspace=workspace).parent_id == result.study_run_id
    assert [s["name"] for s in list_studies(workspace)] == ["ridge"]


def test_asha_prunes_bad_trials(workspace):
    (workspace.root / "train.py").write_text(STEPS_TRAIN)
    space = _space(x={"type": "float", "low": -6.0, "high": 6.0})
    result = tune(TuneConfig(script="train.py", space=space, trials=8, parallel=2, sampler="random", seed=1,
                             pruner="asha", study_name="asha"), workspace=workspace)
    trials = study_trials("asha", workspace=workspace)
    assert result.pruned >= 1, trials[["number", "state", "value", "last_step"]]
    pruned = trials[trials["state"] == "PRUNED"]
    assert (pruned["last_step"] < 11).all()
    assert result.complete + result.pruned + result.failed == 8
    # the tuner logged every reported value to the trial's own run, where the TUI and `runs` read them
    from forgeml.tracking import get_metric_history
    from forgeml.tuning.trial import INTERMEDIATE

    row = pruned.iloc[0]
    history = get_metric_history(row["run_id"], INTERMEDIATE, workspace=workspace)
    assert history["step"].tolist() == list(range(int(row["last_step"]) + 1))


def test_report_file_skips_torn_and_garbled_lines(tmp_path, caplog):
    """A half-written last line waits for the next read; a garbled line is skipped with a warning."""
    from forgeml.tuning.runner import _read_reports, _report_offsets

    path = tmp_path / "0.reports"
    path.write_bytes(b'[0, 1.5, 10.0]\nnot json\n[1, 1.25, 11.0]\n[2, 1.')
    assert _read_reports(path, "job-a", seen={}) == [(0, 1.5, 10.0), (1, 1.25, 11.0)]
    assert "skipped a line" in caplog.text
    with open(path, "ab") as f:
        f.write(b'125, 12.0]\n[0, 9.0, 13.0]\n')
    # the finished line is read whole; a step the study already has is not told twice
    assert _read_reports(path, "job-a", seen={0: 1.5, 1: 1.25}) == [(2, 1.125, 12.0)]
    _report_offsets.pop("job-a")


def test_parallel_trials_never_share_a_gpu(gpu_workspace, tmp_path):
    out = tmp_path / "placements.jsonl"
    (gpu_workspace.root / "train.py").write_text(GPU_TRAIN)
    space = _space(x={"type": "float", "low": -1.0, "high": 1.0})
    result = tune(TuneConfig(script="train.py", space=space, trials=4, parallel="auto", gpus_per_trial=1,
                             sampler="random", seed=0, pruner="none", study_name="gpus", env={"OUT": str(out)}),
                  workspace=gpu_workspace)
    assert result.complete == 4
    spans = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(spans) == 4 and all(s["gpus"] in ("0", "1") for s in spans)
    for i, a in enumerate(spans):
        for b in spans[i + 1:]:
            if a["gpus"] == b["gpus"]:
                assert a["end"] <= b["start"] or b["end"] <= a["start"], (a, b)


def test_resume_after_killing_the_tuner(workspace):
    """Kill -9 the tuning process mid-study, resume: every trial counted once, none lost or duplicated."""
    root = workspace.root
    (root / "train.py").write_text("import time, forgeml\ntime.sleep(0.5)\nwith forgeml.start_run():\n"
                                   "    forgeml.log_metric('val_loss', forgeml.trial_params()['x'] ** 2)\n")
    (root / "space.toml").write_text('[x]\ntype = "float"\nlow = -2.0\nhigh = 2.0\n')
    cmd = [sys.executable, "-m", "forgeml", "tune", "train.py", "--space", "space.toml", "--trials", "6",
           "--parallel", "2", "--sampler", "random", "--seed", "3", "--pruner", "none", "--study", "resumable"]
    env = {**os.environ, "FORGEML_HOME": str(root)}
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    while time.time() < deadline:
        time.sleep(0.3)
        try:
            trials = study_trials("resumable", workspace=workspace)
        except ForgeError:
            continue
        if (trials["state"] == "COMPLETE").sum() >= 2:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run(cmd + ["--resume", "--json"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    trials = study_trials("resumable", workspace=workspace)
    finished = trials[trials["state"].isin(["COMPLETE", "FAIL", "PRUNED"]) & trials["job_id"].notna()]
    assert len(finished) == 6 and result["complete"] + result["failed"] == 6
    assert trials["job_id"].dropna().is_unique
    from forgeml.jobs import list_jobs

    trial_jobs = [j for j in list_jobs(workspace=workspace) if j.name.startswith("resumable-trial-")]
    assert sorted(j.id for j in trial_jobs) == sorted(trials["job_id"].dropna())


def test_bad_space_and_options_are_clear_errors(workspace):
    with pytest.raises(ValidationError, match="low .* must be below high"):
        parse_space({"lr": {"type": "float", "low": 1.0, "high": 0.1}})
    with pytest.raises(ValidationError, match="did you mean 'float'"):
        parse_space({"lr": {"type": "flaot", "low": 0.1, "high": 1.0}})
    with pytest.raises(ValidationError, match="must be defined above it"):
        parse_space({"m": {"type": "float", "low": 0.0, "high": 1.0, "condition": {"opt": "sgd"}}})
    (workspace.root / "t.py").write_text("pass\n")
    space = _space(x={"type": "int", "low": 0, "high": 3})
    with pytest.raises(ForgeError, match="unknown sampler 'tpee'"):
        tune(TuneConfig(script="t.py", space=space, sampler="tpee"), workspace=workspace)
    with pytest.raises(ValidationError, match="does not exist"):
        tune(TuneConfig(script="missing.py", space=space), workspace=workspace)
    with pytest.raises(ValidationError, match="--parallel must be auto or a positive number, got 'x'"):
        tune(TuneConfig(script="t.py", space=space, parallel="x"), workspace=workspace)
    with pytest.raises(ValidationError, match="add --final-run"):
        tune(TuneConfig(script="t.py", space=space, register_as="m"), workspace=workspace)
    assert list_studies(workspace) == []  # nothing was created by the refused runs


def test_conditional_parameters_are_sampled_only_when_active():
    import optuna

    space = _space(opt={"type": "categorical", "choices": ["adam", "sgd"]},
                   momentum={"type": "float", "low": 0.0, "high": 0.9, "condition": {"opt": "sgd"}},
                   layers={"type": "int", "low": 1, "high": 4, "step": 1})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(20):
        trial = study.ask()
        params = space.sample(trial)
        seen.append(params)
        study.tell(trial, 0.0)
    assert all(("momentum" in p) == (p["opt"] == "sgd") for p in seen)
    assert {p["layers"] for p in seen} <= {1, 2, 3, 4}


def test_resume_fails_a_trial_that_never_got_its_job(workspace):
    """A tuner killed between asking for a trial and submitting its job leaves it RUNNING with no job."""
    import optuna

    from forgeml.tuning.study import storage

    (workspace.root / "train.py").write_text("import forgeml\nwith forgeml.start_run():\n"
                                             "    forgeml.log_metric('val_loss', forgeml.trial_params()['x'] ** 2)\n")
    space = _space(x={"type": "float", "low": -1.0, "high": 1.0})
    study = optuna.create_study(study_name="orphan", storage=storage(workspace), direction="minimize")
    orphan = study.ask()
    space.sample(orphan)
    result = tune(TuneConfig(script="train.py", space=space, trials=2, parallel=1, sampler="random", seed=0,
                             pruner="none", study_name="orphan", resume=True), workspace=workspace)
    trials = study_trials("orphan", workspace=workspace).sort_values("number")
    assert trials["state"].tolist() == ["FAIL", "COMPLETE", "COMPLETE"]
    assert result.complete == 2 and result.failed == 0


def test_report_without_a_report_file_logs_to_the_tracking_run(workspace, monkeypatch):
    """A trial on a remote target has no report file at hand: its reports travel in its tracking run."""
    import forgeml
    from forgeml.tracking import create_run, end_run, get_metric_history
    from forgeml.tuning.trial import INTERMEDIATE, REPORTS_ENV

    run = create_run(name="remote-trial", experiment="tuning", workspace=workspace)
    monkeypatch.setenv("FORGEML_RUN_ID", run.id)
    monkeypatch.setenv("FORGEML_PRUNE_FLAG", str(workspace.root / "never.flag"))
    monkeypatch.delenv(REPORTS_ENV, raising=False)
    try:
        forgeml.report(2.0, 0)
        forgeml.report(1.5, 1)
    finally:
        end_run()
    assert get_metric_history(run.id, INTERMEDIATE, workspace=workspace)["value"].tolist() == [2.0, 1.5]
    assert not forgeml.should_prune()


FAST_TRIAL = """
import os, time, forgeml
worse = 0.0 if os.environ["FORGEML_TRIAL_NUMBER"] == "0" else 10.0
with forgeml.start_run():
    for step in range(60):
        forgeml.report(worse + 1.0 / (step + 1), step)
        if forgeml.should_prune():
            raise forgeml.TrialPruned()
        time.sleep(0.002)
    forgeml.log_metric("val_loss", worse)
"""


def test_a_fast_trial_is_pruned_within_one_step_of_the_verdict(workspace):
    """Steps of 2 ms, far faster than the tuner's poll: the verdict on step 0 still stops the trial at step 1."""
    (workspace.root / "fast.py").write_text(FAST_TRIAL)
    space = _space(x={"type": "float", "low": 0.0, "high": 1.0})
    result = tune(TuneConfig(script="fast.py", space=space, trials=3, parallel=1, sampler="random", seed=0,
                             pruner="median", pruner_settings={"n_startup_trials": 1, "n_warmup_steps": 0},
                             study_name="fast"), workspace=workspace)
    trials = study_trials("fast", workspace=workspace).sort_values("number")
    assert trials["state"].tolist() == ["COMPLETE", "PRUNED", "PRUNED"], trials
    assert (trials["last_step"].iloc[1:] <= 1).all(), trials[["number", "state", "last_step"]]
    assert result.pruned == 2


def test_report_takes_the_value_then_the_step_as_optuna_does(monkeypatch, tmp_path):
    """Swapped arguments are caught when the step cannot be one; numpy numbers are accepted."""
    import numpy as np

    import forgeml
    from forgeml.tuning.trial import REPORTS_ENV

    with pytest.raises(ValidationError, match=r"step must be a whole number, got 0.35 \(forgeml.report takes the value"):
        forgeml.report(3, 0.35)
    with pytest.raises(ValidationError, match="value must be a number"):
        forgeml.report("0.3", 1)
    with pytest.raises(ValidationError, match="step must be 0 or more"):
        forgeml.report(0.3, -1)
    monkeypatch.setenv("FORGEML_PRUNE_FLAG", str(tmp_path / "0.flag"))
    monkeypatch.setenv(REPORTS_ENV, str(tmp_path / "0.reports"))
    forgeml.report(np.float32(0.5), np.int64(2))
    step, value, _ts = json.loads((tmp_path / "0.reports").read_text())
    assert (step, value) == (2, 0.5)


def test_pruner_settings_from_the_command_line(workspace):
    """--pruner-* options reach the pruner; one the chosen pruner does not take is a one-line error."""
    from click.testing import CliRunner

    from forgeml.cli import cli
    from forgeml.tuning.study import make_pruner

    (workspace.root / "t.py").write_text("pass\n")
    (workspace.root / "space.toml").write_text('[x]\ntype = "float"\nlow = 0.0\nhigh = 1.0\n')
    result = CliRunner().invoke(cli, ["tune", "t.py", "--space", "space.toml", "--pruner", "asha",
                                      "--pruner-warmup-steps", "2"])
    assert isinstance(result.exception, ValidationError)
    assert "the asha pruner does not take n_warmup_steps; it takes min_resource, reduction_factor" in str(result.exception)
    pruner = make_pruner("median", {"n_startup_trials": 5, "n_warmup_steps": 3})
    assert (pruner._n_startup_trials, pruner._n_warmup_steps) == (5, 3)
    assert list_studies(workspace) == []
