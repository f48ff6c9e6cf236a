"""`forgeml runs ...`: listing, showing, searching, comparing, deleting, artifacts and reproduce plans."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import forgeml
from forgeml.cli import cli, main
from forgeml.tracking import start_run


@pytest.fixture
def two_runs(tracked):
    with start_run(name="alpha", experiment="cli") as a:
        forgeml.log_params({"lr": 0.1})
        forgeml.log_metric("val_loss", 0.4)
        forgeml.log_text("hello", "notes.txt")
    with start_run(name="beta", experiment="cli") as b:
        forgeml.log_params({"lr": 0.01})
        forgeml.log_metric("val_loss", 0.2)
    return a, b


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_ls_and_search(two_runs):
    a, b = two_runs
    out = invoke("runs", "ls")
    assert "alpha" in out and "beta" in out and a.id[:8] in out
    rows = json.loads(invoke("runs", "search", "metrics.val_loss < 0.3", "--json"))
    assert [r["name"] for r in rows] == ["beta"] and rows[0]["params.lr"] == "0.01"
    rows = json.loads(invoke("runs", "ls", "--status", "finished", "-e", "cli", "--json"))
    assert {r["name"] for r in rows} == {"alpha", "beta"}


def test_show_compare_history(two_runs):
    a, b = two_runs
    shown = json.loads(invoke("runs", "show", a.id[:8], "--json"))
    assert shown["id"] == a.id and shown["params"] == {"lr": "0.1"} and shown["artifacts"][0]["path"] == "notes.txt"
    assert "val_loss" in invoke("runs", "show", a.id)
    compared = json.loads(invoke("runs", "compare", a.id, b.id, "--only-diff", "--json"))
    assert {r["field"] for r in compared["rows"]} >= {"name", "params.lr", "metrics.val_loss"}
    assert all(r["differs"] for r in compared["rows"])
    assert "params.lr" in invoke("runs", "compare", a.id, b.id)
    assert invoke("runs", "history", a.id, "val_loss", "--csv").splitlines()[0] == "step,timestamp,value"


def test_delete_restore(two_runs):
    a, _ = two_runs
    assert "Deleted 1" in invoke("runs", "delete", a.id)
    assert "alpha" not in invoke("runs", "ls")
    assert "alpha" in invoke("runs", "ls", "--deleted")
    assert "Restored 1" in invoke("runs", "restore", a.id)
    assert "alpha" in invoke("runs", "ls")


def test_artifacts_and_download(two_runs, tmp_path):
    a, _ = two_runs
    listed = json.loads(invoke("runs", "artifacts", a.id, "--json"))
    assert [x["path"] for x in listed] == ["notes.txt"]
    invoke("runs", "download", a.id, "--dest", str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "notes.txt").read_text() == "hello"


def test_reproduce_dry_run_builds_a_job_spec(two_runs, monkeypatch):
    monkeypatch.setattr("sys.argv", ["train.py", "--lr", "0.1"])
    with start_run(name="to-repeat") as run:
        forgeml.tracking.log_input(dataset="mnist@v2")
    plan = json.loads(invoke("runs", "reproduce", run.id, "--dry-run", "--json"))
    assert plan["spec"]["script"] == "train.py" and plan["spec"]["args"] == ["--lr", "0.1"]
    assert plan["spec"]["datasets"] == ["mnist@v2"] and plan["spec"]["experiment"] == "default"
    assert plan["spec"]["env"]["FORGEML_REPRODUCES"] == run.id
    assert plan["job_id"] is None


def test_a_run_from_python_c_cannot_be_reproduced(two_runs, monkeypatch):
    from forgeml.errors import ValidationError
    from forgeml.jobs import reproduce

    monkeypatch.setattr("sys.argv", ["-c"])
    with start_run() as run:
        pass
    with pytest.raises(ValidationError, match="python -c"):
        reproduce(run.id, dry_run=True)


def test_errors_are_one_line_and_exit_2(two_runs, capsys):
    with pytest.raises(SystemExit) as info:
        main(["runs", "search", "metrics.val_loss < 'x'"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("forgeml: error: metrics.val_loss compares with numbers") and "column 20" in err
    with pytest.raises(SystemExit) as info:
        main(["runs", "show", "ffffffffffff"])
    assert info.value.code == 2


def test_reproduce_submits_through_the_jobs_layer(tracked, monkeypatch):
    jobs = pytest.importorskip("forgeml.jobs")
    if not hasattr(jobs, "submit") or not hasattr(jobs, "get_job"):
        pytest.skip("the jobs layer offers no submit() yet")
    (tracked.root / "train.py").write_text("print('training')\n")
    monkeypatch.setattr("sys.argv", ["train.py", "--epochs", "2"])
    with start_run(name="original", experiment="repro") as run:
        forgeml.log_params({"epochs": 2})
    out = invoke("runs", "reproduce", run.id[:8])
    assert "Submitted job" in out
    job_id = out.split("Submitted job ")[1].split()[0]
    job = jobs.get_job(job_id)
    assert job.spec.script == "train.py" and job.spec.args == ["--epochs", "2"]
    assert job.spec.experiment == "repro" and job.spec.env["FORGEML_REPRODUCES"] == run.id
