"""Pipelines: the DAG from data dependencies, cached reruns, retries with backoff, history and the CLI."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from forgeml.errors import ForgeError, ValidationError
from forgeml.pipelines import get_run, list_runs, run_pipeline

MODULE = '''
import pyarrow as pa
from forgeml import pipeline, step

CALLS = []

@step
def ingest(rows):
    CALLS.append("ingest")
    return pa.table({{"x": list(range(rows))}})

@step
def features(table, scale):
    CALLS.append("features")
    return table.append_column("y", pa.array([v * scale for v in table.column("x").to_pylist()]))

@step
def train(table):
    CALLS.append("train")
    return {{"weights": sum(table.column("y").to_pylist()), "version": {version}}}

@step
def evaluate(model, table):
    CALLS.append("evaluate")
    return model["weights"] / table.num_rows

@pipeline
def lifecycle(rows: int = 10, scale: float = 2.0):
    data = ingest(rows)
    feats = features(data, scale)
    model = train(feats)
    evaluate(model, feats)
'''


def _load(tmp_path: Path, version: int = 1, name: str = "lifecycle_mod"):
    """Write the pipeline module (train's code depends on version) and import it fresh."""
    path = tmp_path / f"{name}.py"
    path.write_text(MODULE.format(version=version))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _states(run):
    return {s.node: s.state for s in run.steps}


def test_rerun_skips_cached_steps_and_reruns_changed_ones(workspace, tmp_path):
    mod = _load(tmp_path)
    first = run_pipeline(mod.lifecycle, workspace=workspace)
    assert first.status == "SUCCEEDED"
    assert mod.CALLS == ["ingest", "features", "train", "evaluate"]
    assert first.step("train").upstream == ["features"]
    assert first.step("evaluate").upstream == ["features", "train"]
    assert first.output("evaluate") == pytest.approx(9.0)  # sum(2x for x < 10) / 10

    mod.CALLS.clear()
    again = run_pipeline(mod.lifecycle, workspace=workspace)
    assert set(_states(again).values()) == {"CACHED"} and mod.CALLS == []
    assert again.output("evaluate") == pytest.approx(9.0)

    # a new parameter reaches features and everything after it, not ingest
    changed = run_pipeline(mod.lifecycle, {"scale": 3.0}, workspace=workspace)
    assert _states(changed) == {"ingest": "CACHED", "features": "SUCCEEDED", "train": "SUCCEEDED",
                                "evaluate": "SUCCEEDED"}
    assert changed.output("evaluate") == pytest.approx(13.5)

    # changed code in train reruns train and its dependant only
    mod2 = _load(tmp_path, version=2)
    recoded = run_pipeline(mod2.lifecycle, {"scale": 3.0}, workspace=workspace)
    assert _states(recoded) == {"ingest": "CACHED", "features": "CACHED", "train": "SUCCEEDED",
                                "evaluate": "SUCCEEDED"}
    assert mod2.CALLS == ["train", "evaluate"]
    assert recoded.output("train")["version"] == 2

    # the cache can be bypassed
    fresh = run_pipeline(mod2.lifecycle, {"scale": 3.0}, workspace=workspace, use_cache=False)
    assert set(_states(fresh).values()) == {"SUCCEEDED"}
    assert [r["id"] for r in list_runs(workspace=workspace)][0] == fresh.id


FLAKY = '''
from forgeml import pipeline, step

ATTEMPTS = {{"load": 0, "fit": 0}}

@step
def load():
    return [1, 2, 3]

@step(retries={retries}, backoff=0.5)
def fit(data):
    ATTEMPTS["fit"] += 1
    if ATTEMPTS["fit"] <= {failures}:
        raise RuntimeError(f"GPU fell off the bus (attempt {{ATTEMPTS['fit']}})")
    return sum(data)

@step
def publish(model):
    return model

@step
def side():
    return "independent"

@pipeline
def flaky():
    publish(fit(load()))
    side()
'''


def _flaky(tmp_path: Path, retries: int, failures: int):
    path = tmp_path / f"flaky_{retries}_{failures}.py"
    path.write_text(FLAKY.format(retries=retries, failures=failures))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_failing_step_retries_with_backoff_then_fails_the_run_with_a_clear_report(workspace, tmp_path):
    mod = _flaky(tmp_path, retries=2, failures=99)
    delays: list[float] = []
    run = run_pipeline(mod.flaky, workspace=workspace, sleep=delays.append)
    assert run.status == "FAILED"
    assert delays == [0.5, 1.0]  # exponential backoff between the three attempts
    fit = run.step("fit")
    assert fit.state == "FAILED" and fit.attempts == 3 and mod.ATTEMPTS["fit"] == 3
    assert "RuntimeError: GPU fell off the bus (attempt 3)" in fit.error
    assert run.step("publish").state == "SKIPPED" and "'fit'" in run.step("publish").error
    assert run.step("side").state == "SUCCEEDED"  # an independent branch still runs
    assert run.error == "step 'fit' failed after 3 attempt(s): RuntimeError: GPU fell off the bus (attempt 3)"
    report = run.report()
    assert "FAILED" in report and "3 attempts" in report and "GPU fell off the bus" in report
    stored = get_run(run.id[:6], workspace)
    assert stored.status == "FAILED" and stored.step("fit").attempts == 3 and stored.error == run.error


def test_a_flaky_step_succeeds_on_retry(workspace, tmp_path):
    mod = _flaky(tmp_path, retries=2, failures=1)
    run = run_pipeline(mod.flaky, workspace=workspace, sleep=lambda s: None)
    assert run.status == "SUCCEEDED"
    assert run.step("fit").attempts == 2 and run.output("publish") == 6


def test_steps_are_plain_functions_outside_a_pipeline(tmp_path):
    mod = _load(tmp_path, name="plain_mod")
    table = mod.ingest(3)
    assert table.num_rows == 3 and mod.CALLS == ["ingest"]


def test_bad_parameters_and_graphs_are_errors(workspace, tmp_path):
    mod = _load(tmp_path, name="bad_mod")
    with pytest.raises(ValidationError, match="no parameter 'scael' .*did you mean 'scale'"):
        run_pipeline(mod.lifecycle, {"scael": 1.0}, workspace=workspace)
    from forgeml import pipeline, step

    @step
    def pair():
        return 1, 2

    @pipeline
    def unpacking():
        a, b = pair()

    with pytest.raises(ValidationError, match="index it instead"):
        run_pipeline(unpacking, workspace=workspace)

    @pipeline
    def empty():
        return None

    with pytest.raises(ValidationError, match="calls no @step"):
        run_pipeline(empty, workspace=workspace)
    with pytest.raises(ForgeError, match="unknown pipeline 'nope'"):
        run_pipeline("nope", workspace=workspace)


def test_cli_runs_lists_and_shows_pipelines(workspace):
    (workspace.root / "pipes.py").write_text(textwrap.dedent('''
        from forgeml import pipeline, step

        @step
        def double(x):
            return x * 2

        @step
        def explode(y):
            raise ValueError("bad input " + str(y))

        @pipeline
        def ok(x: int = 1):
            double(x)

        @pipeline
        def broken():
            explode(double(2))
    '''))
    (workspace.root / "plugins.toml").write_text('[pipelines]\nmodules = ["pipes.py"]\n')
    from forgeml.cli import cli
    from forgeml.workspace import Workspace, set_current

    ws = Workspace(workspace.root)
    set_current(ws)
    runner = CliRunner()
    result = runner.invoke(cli, ["pipeline", "run", "ok", "-p", "x=21", "--json"])
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.output)["id"]
    assert get_run(run_id, ws).output("double", ws) == 42
    failed = runner.invoke(cli, ["pipeline", "run", "broken"])
    assert failed.exit_code == 1 and "step 'explode' failed after 1 attempt(s): ValueError: bad input 4" in failed.output
    listed = json.loads(runner.invoke(cli, ["pipeline", "ls", "--json"]).output)
    assert [r["pipeline"] for r in listed] == ["broken", "ok"]
    shown = runner.invoke(cli, ["pipeline", "show", run_id[:8]])
    assert "double" in shown.output and "SUCCEEDED" in shown.output
    defined = json.loads(runner.invoke(cli, ["pipeline", "ls", "--defined", "--json"]).output)
    assert {"ok", "broken"} <= {d["pipeline"] for d in defined}
    ws.close()
