"""The ray executor against a real Ray cluster on loopback: a head node and a worker node (tests/services/ray.sh).

The worker node declares one GPU to Ray; no GPU exists here, so these tests check what Ray does with the
request (it places the job on that node, counts the GPU and sets CUDA_VISIBLE_DEVICES), not CUDA itself.
Jobs run on this machine, so they log to the test workspace directly: on a real cluster the workspace's
metadata and artifact stores must be reachable from the nodes (PostgreSQL and S3, or a shared folder).
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest

from forgeml.contracts import LaunchRequest
from forgeml.errors import JobError, RemoteError

pytestmark = pytest.mark.service


@pytest.fixture
def ray_executor(ray_dashboard, workspace):
    """A ray executor on the loopback cluster, with one variable set for every job."""
    from forgeml.plugins.ray import RayTargetSettings
    from forgeml.plugins.ray.executor import RayExecutor

    return RayExecutor(RayTargetSettings(address=ray_dashboard, python=sys.executable,
                                         env={"FORGEML_TEST_GREETING": "hello from the target"}), workspace)


def _request(workdir: Path, argv: list[str], gpus: int = 0) -> LaunchRequest:
    from forgeml.jobs.spec import JobSpec

    job_id = f"ray-{uuid.uuid4().hex[:8]}"
    return LaunchRequest(job_id=job_id, attempt=1, argv=argv, env={}, workdir=str(workdir),
                         log_path=str(workdir / f"{job_id}.log"), spec=JobSpec(command=argv, gpus=gpus))


def _wait(executor, handle, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    while (status := executor.poll(handle)).state == "running":
        assert time.monotonic() < deadline, f"{handle} still running"
        time.sleep(0.2)
    return status


def test_a_gpu_job_runs_where_ray_has_a_gpu_with_its_working_dir_and_env(ray_executor, tmp_path):
    """The working dir is uploaded, the target's env is set, and Ray gives the job the worker node's GPU."""
    (tmp_path / "data.txt").write_text("uploaded with the job")
    code = ("import os; print(open('data.txt').read()); print(os.environ['FORGEML_TEST_GREETING']); "
            "print('gpus=' + os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>'), flush=True)")
    handle = ray_executor.launch(_request(tmp_path, [sys.executable, "-c", code], gpus=1))
    status = _wait(ray_executor, handle)
    text, _ = ray_executor.logs(handle)
    assert (status.state, status.exit_code) == ("succeeded", 0), (status, text)
    assert "uploaded with the job" in text and "hello from the target" in text
    assert "gpus=0" in text, f"Ray should have given the job GPU 0 of the worker node: {text!r}"
    info = ray_executor.client.get_job_info(handle.removeprefix("ray:"))
    assert info.driver_node_id, "Ray records which node ran the entrypoint"


def test_a_job_asking_for_more_gpus_than_any_node_has_waits_and_can_be_cancelled(ray_executor, tmp_path):
    """Two GPUs exist on no node: the job stays queued (running to the scheduler) until it is cancelled.

    Ray keeps a queued job PENDING even after a stop; the executor reports it cancelled from its own record.
    """
    handle = ray_executor.launch(_request(tmp_path, [sys.executable, "-c", "print('never')"], gpus=2))
    time.sleep(3)
    assert ray_executor.poll(handle).state == "running"
    assert ray_executor.client.get_job_status(handle.removeprefix("ray:")).value == "PENDING"
    ray_executor.cancel(handle)
    assert _wait(ray_executor, handle, 60).state == "cancelled"


def test_a_job_through_the_scheduler_logs_its_run_and_artifacts(workspace, ray_dashboard, job_code):
    """A JobSpec with target "cluster" runs on Ray; params, metrics, artifact and log come back to the workspace."""
    from forgeml.jobs import SUCCEEDED, JobSpec, Scheduler, get_job, read_logs, submit
    from forgeml.tracking import get_metric_history, get_run, list_artifacts
    from forgeml.workspace import Workspace, set_current

    conf = workspace.root / "plugins.toml"
    conf.write_text(conf.read_text() + f'\n[compute.targets.cluster]\nplugin = "ray"\naddress = "{ray_dashboard}"\n'
                                       f'python = "{sys.executable}"\n')
    ws = Workspace(workspace.root)
    set_current(ws)
    try:
        job = submit(JobSpec(script="tracked.py", args=["3"], workdir=str(job_code), target="cluster",
                             params={"lr": 0.1}), ws)
        Scheduler(ws).run_until_idle(timeout=180)
        done = get_job(job.id, ws)
        log, _ = read_logs(job.id, workspace=ws)
        assert done.state == SUCCEEDED, (done, log)
        run = get_run(done.run_id)
        assert run.params["lr"] == "0.1"
        assert list(get_metric_history(run.id, "loss")["step"]) == [0, 1, 2]
        (artifact,) = list_artifacts(run.id)
        assert ws.artifacts.get_bytes(artifact.digest) == b"weights after 3 steps"
        assert "step 2" in log and "done" in log
    finally:
        set_current(workspace)
        ws.close()


def test_bad_handles_and_an_unreachable_cluster_are_clear_errors(ray_executor, workspace, monkeypatch):
    """A handle the executor never issued, or a job Ray does not know, is a JobError; no cluster is a RemoteError."""
    from forgeml.plugins.ray import RayTargetSettings
    from forgeml.plugins.ray.executor import RayExecutor

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)

    with pytest.raises(JobError, match="not a handle it issued"):
        ray_executor.poll("local:1234")
    with pytest.raises(JobError, match="no such job"):
        ray_executor.poll("ray:forgeml-never-submitted")
    nowhere = RayExecutor(RayTargetSettings(address="http://127.0.0.1:1"), workspace)
    with pytest.raises(RemoteError, match="127.0.0.1:1") as info:
        nowhere.poll("ray:forgeml-x")
    assert "\n" not in str(info.value)
    assert not nowhere.check()[0].ok


def test_ray_address_variables_that_would_override_the_target_are_clear_errors(ray_dashboard, workspace, monkeypatch):
    """Ray's job client ignores the address it is given when RAY_ADDRESS or RAY_API_SERVER_ADDRESS is set: the
    executor says so instead of sending the job to another cluster."""
    from forgeml.errors import ConfigError
    from forgeml.plugins.ray import RayTargetSettings
    from forgeml.plugins.ray.executor import RayExecutor

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", ray_dashboard)
    elsewhere = RayExecutor(RayTargetSettings(address="http://127.0.0.1:1"), workspace)
    with pytest.raises(ConfigError, match="RAY_API_SERVER_ADDRESS=.*not to the target's address http://127.0.0.1:1"):
        elsewhere.poll("ray:forgeml-x")
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS")
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:1")
    with pytest.raises(RemoteError, match="RAY_ADDRESS=http://127.0.0.1:1 instead") as info:
        RayExecutor(RayTargetSettings(address=ray_dashboard), workspace).poll("ray:forgeml-x")
    assert "\n" not in str(info.value)
    monkeypatch.setenv("RAY_ADDRESS", ray_dashboard)  # the same cluster: nothing to say
    with pytest.raises(JobError, match="no such job"):
        RayExecutor(RayTargetSettings(address=ray_dashboard), workspace).poll("ray:forgeml-never-submitted")


def test_tuning_trials_run_as_ray_jobs_across_both_nodes(workspace, ray_dashboard, monkeypatch):
    """A study on the Ray target runs its trials as Ray jobs, on the head and the worker node, and finds a best."""
    from ray.job_submission import JobSubmissionClient

    from forgeml.jobs import FAILED, list_jobs, read_logs
    from forgeml.tuning import TuneConfig, parse_space, tune
    from forgeml.workspace import Workspace, set_current

    conf = workspace.root / "plugins.toml"
    conf.write_text(conf.read_text() + f'\n[compute.targets.cluster]\nplugin = "ray"\naddress = "{ray_dashboard}"\n'
                                       f'python = "{sys.executable}"\n')
    (workspace.root / "trial.py").write_text(
        "import time, forgeml\nx = forgeml.trial_params()['x']\ntime.sleep(1)\nforgeml.report(x, 0)\n"
        "with forgeml.start_run():\n    forgeml.log_metric('val_loss', (x - 0.3) ** 2)\n")
    monkeypatch.chdir(workspace.root)
    ws = Workspace(workspace.root)
    set_current(ws)
    try:
        def study(name):
            return tune(TuneConfig(script="trial.py", space=parse_space({"x": {"type": "float", "low": 0, "high": 1}}),
                                   trials=6, parallel="3", sampler="random", seed=1, pruner="none", metric="val_loss",
                                   study_name=name, target="cluster"), workspace=ws)

        result = study("on-ray")
        if result.failed:
            # Only the loopback cluster's shared runtime_resources race (tests/services/ray.sh) may fail a trial:
            # the package is unpacked on both nodes after the first study, so a second one cannot meet it.
            tails = [read_logs(j.id, workspace=ws)[0] for j in list_jobs(state=FAILED, workspace=ws)]
            assert tails and all("getcwd() failed" in t for t in tails), tails
            result = study("on-ray-again")
        assert (result.complete, result.failed) == (6, 0)
        mine = {j.id for j in list_jobs(workspace=ws)}
        nodes = {j.driver_node_id for j in JobSubmissionClient(ray_dashboard).list_jobs()
                 if (j.metadata or {}).get("forgeml_job") in mine}
        assert len(nodes) == 2, "trials should run on the head and on the worker node"
    finally:
        set_current(workspace)
        ws.close()
