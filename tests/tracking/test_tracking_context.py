"""Captured context: git state and diff in a temporary repository, command line, packages, job."""

from __future__ import annotations

import subprocess

import pytest

import forgeml
from forgeml.tracking import get_run, list_artifacts, start_run
from forgeml.tracking.context import DIFF_ARTIFACT, git_state, job_context, package_versions


def git(repo, *args):
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "feature-x")
    (path / "train.py").write_text("print('v1')\n")
    git(path, "add", "train.py")
    git(path, "commit", "-q", "-m", "first")
    return path


def head(repo) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()


def test_a_dirty_repository_records_commit_branch_and_the_diff_as_an_artifact(tracked, repo, monkeypatch):
    (repo / "train.py").write_text("print('v2, uncommitted')\n")
    (repo / "notes.txt").write_text("untracked\n")
    monkeypatch.chdir(repo)
    with start_run(name="dirty") as run:
        pass
    stored = get_run(run.id)
    g = stored.context["git"]
    assert g["commit"] == head(repo) and g["branch"] == "feature-x" and g["dirty"] is True
    assert g["untracked"] == ["notes.txt"]
    assert [a.path for a in list_artifacts(run.id)] == [DIFF_ARTIFACT]
    diff = tracked.artifacts.get_bytes(list_artifacts(run.id)[0].digest).decode()
    assert "-print('v1')" in diff and "+print('v2, uncommitted')" in diff


def test_a_clean_repository_stores_no_diff(tracked, repo, monkeypatch):
    monkeypatch.chdir(repo)
    with start_run() as run:
        pass
    assert get_run(run.id).context["git"]["dirty"] is False
    assert list_artifacts(run.id) == []


def test_outside_a_repository_there_is_no_git_entry(tracked, tmp_path, monkeypatch):
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    with start_run() as run:
        pass
    assert "git" not in get_run(run.id).context
    assert git_state(plain) == ({}, None)


def test_a_large_diff_is_cut(repo):
    (repo / "train.py").write_text("x = 1\n" * 5000)
    info, diff = git_state(repo, max_diff_bytes=1000)
    assert len(diff) == 1000 and info["diff_truncated"] > 1000


def test_command_line_versions_host_and_gpus(tracked, retrack, monkeypatch):
    """GPUs come from the `declared` inventory: no real GPU exists on the test machine."""
    ws = retrack(declared_gpus=2, capture_git=False)
    monkeypatch.setattr("sys.argv", ["train.py", "--lr", "0.1"])
    with start_run(workspace=ws) as run:
        pass
    ctx = get_run(run.id, workspace=ws).context
    assert ctx["argv"] == ["train.py", "--lr", "0.1"]
    assert ctx["python"].count(".") == 2 and ctx["host"] and ctx["executable"]
    assert ctx["packages"]["numpy"] and ctx["packages"]["forgeml"]
    assert [g["index"] for g in ctx["gpus"]] == [0, 1]
    assert "git" not in ctx


def test_package_versions_skip_what_is_not_installed():
    found = package_versions(("numpy", "surely-not-installed-pkg"))
    assert set(found) == {"numpy"}


def test_job_context_comes_from_the_environment():
    env = {"FORGEML_JOB_ID": "j7", "FORGEML_PARAMS": '{"lr": 0.1}', "FORGEML_CHECKPOINT_DIR": "/ckpt"}
    job = job_context(env)
    assert job["id"] == "j7" and job["params"] == {"lr": 0.1} and job["checkpoint_dir"] == "/ckpt"
    assert job_context({}) == {}
    assert job_context({"FORGEML_JOB_ID": "j8", "FORGEML_PARAMS": "{oops"})["params_text"] == "{oops"


def test_inputs_are_kept_with_the_run(tracked):
    with start_run() as run:
        forgeml.tracking.log_input(dataset="clicks@v3")
    assert get_run(run.id).inputs == [{"kind": "dataset", "ref": "clicks@v3"}]


def test_job_spec_comes_from_the_environment_the_scheduler_sets():
    """A job's run records its spec from FORGEML_JOB_SPEC (tracking never asks the jobs layer)."""
    env = {"FORGEML_JOB_ID": "j9", "FORGEML_JOB_SPEC": '{"script": "train.py", "gpus": 2}'}
    assert job_context(env)["spec"] == {"script": "train.py", "gpus": 2}
    assert "spec" not in job_context({"FORGEML_JOB_ID": "j9", "FORGEML_JOB_SPEC": "{broken"})
