"""The slurm executor against a real one-node Slurm (slurmctld, slurmd, munge) with 2 fake GPUs as gres."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from forgeml.contracts import ExecutionStatus, LaunchRequest
from forgeml.plugins.remote.jobdir import parse_handle
from forgeml.plugins.slurm.executor import SlurmExecutor
from forgeml.plugins.slurm.settings import SlurmTargetSettings

pytestmark = pytest.mark.service


def wait_done(executor, handle: str, timeout: float = 60.0) -> ExecutionStatus:
    """Poll until the attempt leaves the running state (queued counts as running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = executor.poll(handle)
        if status.state != "running":
            return status
        time.sleep(0.3)
    raise AssertionError(f"attempt {handle} still running after {timeout}s")


def request(job_code: Path, tmp_path: Path, job_id: str, argv: list[str], env=None, spec=None) -> LaunchRequest:
    """A launch request for a script in the job code folder."""
    return LaunchRequest(job_id=job_id, attempt=1, argv=[sys.executable, *argv], env=dict(env or {}),
                         workdir=str(job_code), log_path=str(tmp_path / f"{job_id}.log"), spec=spec)


def test_gpu_job_runs_end_to_end_and_sees_its_gres_gpu(workspace, slurm_settings, job_code, tmp_path):
    from forgeml.jobs import JobSpec
    from forgeml.tracking import create_run, get_metric_history, get_run, list_artifacts

    run = create_run("remote-slurm", "default")
    executor = SlurmExecutor(slurm_settings, workspace)
    spec = JobSpec(script="tracked.py", args=["3"], gpus=1, cpus=1, memory_mb=256, timeout_s=300)
    handle = executor.launch(request(job_code, tmp_path, "slurm-gpu", ["tracked.py", "3"],
                                     env={"FORGEML_RUN_ID": run.id}, spec=spec))
    status = wait_done(executor, handle)
    assert status.state == "succeeded" and status.exit_code == 0, status
    log = (tmp_path / "slurm-gpu.log").read_text()
    assert re.search(r"^CUDA_VISIBLE_DEVICES=[01]$", log, re.M), log
    assert "done" in log
    assert list(get_metric_history(run.id, "loss")["step"]) == [0, 1, 2]
    assert get_run(run.id).tags["forgeml.target"].startswith("slurm:")
    (artifact,) = list_artifacts(run.id)
    assert workspace.artifacts.get_bytes(artifact.digest) == b"weights after 3 steps"


def test_cancel_with_scancel(workspace, slurm_settings, job_code, tmp_path):
    executor = SlurmExecutor(slurm_settings, workspace)
    handle = executor.launch(request(job_code, tmp_path, "slurm-cancel", ["sleeper.py", "120"]))
    deadline = time.monotonic() + 30
    while "started" not in executor.logs(handle)[0] and time.monotonic() < deadline:
        time.sleep(0.3)
    executor.cancel(handle)
    assert wait_done(executor, handle).state == "cancelled"


def test_failing_job_submitted_through_an_ssh_login_node(workspace, slurm_settings, sshd_server, job_code,
                                                        tmp_path):
    over_ssh = SlurmTargetSettings(**{
        **slurm_settings.__dict__, "login_host": f"{sshd_server.host}:{sshd_server.port}",
        "user": sshd_server.user, "key_files": [sshd_server.key_filename], "use_agent": False,
        "known_hosts": sshd_server.known_hosts,
    })
    executor = SlurmExecutor(over_ssh, workspace)
    handle = executor.launch(request(job_code, tmp_path, "slurm-ssh-fail", ["fail.py"]))
    assert handle.startswith(f"slurm://{sshd_server.user}@{sshd_server.host}:{sshd_server.port}/")
    status = wait_done(executor, handle)
    assert (status.state, status.exit_code) == ("failed", 3), status
    assert "about to fail" in (tmp_path / "slurm-ssh-fail.log").read_text()


def test_check_reports_controller_partition_and_gres(workspace, slurm_settings):
    checks = {c.name.split(" ")[0]: c for c in SlurmExecutor(slurm_settings, workspace).check()}
    assert checks["slurmctld"].ok and checks["partition"].ok and checks["forgeml"].ok
    assert "gpu:" in checks["gpus"].detail


def test_unreachable_controller_fails_the_check_not_the_process(workspace, tmp_path):
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=none\nSlurmctldHost=localhost\nSlurmctldPort=1\n")
    checks = SlurmExecutor(SlurmTargetSettings(env={"SLURM_CONF": str(conf)}), workspace).check()
    assert checks and not checks[0].ok


def test_array_job_runs_one_task_per_trial_each_on_its_own_gres_gpu(workspace, slurm_settings, job_code, tmp_path):
    executor = SlurmExecutor(slurm_settings, workspace)
    handle = executor.launch(request(job_code, tmp_path, "slurm-array", ["gpu.py"], spec={"gpus": 1, "array": 2}))
    status = wait_done(executor, handle)
    assert status.state == "succeeded" and "2 array tasks succeeded" in status.reason, status
    job_dir = parse_handle(handle, "slurm").job_dir
    outputs = [Path(job_dir, f"output-{i}.log").read_text() for i in (0, 1)]
    assert all(re.search(r"^CUDA_VISIBLE_DEVICES=[01]$", text, re.M) for text in outputs), outputs


FSDP_JOB = """
import json
import torch
from forgeml import distributed as fd

rank, world = fd.init()
torch.manual_seed(0)
model = fd.wrap(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(16, 4)
for _ in range(3):
    loss = ((model(x) - 1) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
print(json.dumps({"rank": rank, "world": world, "strategy": fd.strategy(), "loss": round(loss.item(), 6)}), flush=True)
fd.finish()
"""


def test_fsdp_job_launches_through_srun_and_torchrun_rendezvous(workspace, slurm_settings, job_code, tmp_path):
    """The multi-node launch (srun + torchrun with the c10d rendezvous) runs a 2-process FSDP job on the one-node Slurm."""
    import json
    from dataclasses import replace

    from forgeml.jobs import JobSpec

    code = tmp_path / "fsdp-code"  # not the shared job_code folder: other tests count its files
    code.mkdir()
    (code / "fsdp_job.py").write_text(FSDP_JOB)
    settings = replace(slurm_settings, srun_torchrun=True)
    executor = SlurmExecutor(settings, workspace)
    spec = JobSpec(script="fsdp_job.py", strategy="fsdp", nproc=2, cpus=2, memory_mb=1024, timeout_s=600)
    argv = spec.argv(sys.executable)
    handle = executor.launch(LaunchRequest(job_id="slurm-fsdp", attempt=1, argv=argv,
                                           env={"FORGEML_STRATEGY": "fsdp"}, workdir=str(code),
                                           log_path=str(tmp_path / "slurm-fsdp.log"), spec=spec))
    status = wait_done(executor, handle, timeout=300)
    log = (tmp_path / "slurm-fsdp.log").read_text()
    assert status.state == "succeeded", log
    from forgeml.plugins.slurm.executor import SCHEME

    sbatch = Path(parse_handle(handle, SCHEME).job_dir, "job.sbatch").read_text()
    assert "srun --ntasks-per-node=1" in sbatch and "--rdzv-backend=c10d" in sbatch and "--standalone" not in sbatch
    # both ranks append to one log: two reports can share a line, so find each object on its own
    reports = [json.loads(found) for found in re.findall(r"\{[^{}]*\}", log)]
    assert sorted(r["rank"] for r in reports) == [0, 1] and {r["world"] for r in reports} == {2}
    assert {r["strategy"] for r in reports} == {"fsdp"} and len({r["loss"] for r in reports}) == 1
