"""Pure pieces of the remote targets: code snapshots, handles, sbatch rendering and Slurm state mapping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from forgeml.contracts import LaunchRequest
from forgeml.errors import ValidationError
from forgeml.plugins.remote.gpus import parse_nvidia_smi, pick_gpus
from forgeml.plugins.remote.jobdir import make_handle, needs_of, parse_handle, parse_status, remote_env
from forgeml.plugins.remote.snapshot import take_snapshot
from forgeml.plugins.remote.states import slurm_status
from forgeml.plugins.slurm.batch import (
    parse_sbatch_id,
    parse_scontrol,
    render_sbatch,
    slurm_time,
    status_from_records,
)
from forgeml.plugins.slurm.settings import SlurmTargetSettings


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


# ------------------------------------------------------------------ snapshots
def test_git_snapshot_has_commit_diff_and_untracked_files_but_not_ignored_ones(tmp_path):
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "train.py").write_text("print(1)\n")
    (repo / ".gitignore").write_text("data/\n")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "add", ".")
    _git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "init")
    (repo / "src" / "train.py").write_text("print(2)\n")
    (repo / "src" / "new.py").write_text("X = 1\n")
    (repo / "data").mkdir()
    (repo / "data" / "big.bin").write_bytes(b"0" * 100)
    (repo / ".forgeml").mkdir()
    (repo / ".forgeml" / "metadata.db").write_bytes(b"db")
    snap = take_snapshot(repo / "src")
    assert snap.kind == "git" and len(snap.commit or "") == 40
    assert "print(2)" in snap.diff
    assert set(snap.files) == {".gitignore", "src/train.py", "src/new.py"}
    assert snap.workdir == "src"
    assert snap.provenance()["dirty"] is True


def test_archive_snapshot_skips_workspace_state_and_caches(tmp_path):
    (tmp_path / "a.py").write_text("A\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"x")
    (tmp_path / ".forgeml").mkdir()
    (tmp_path / ".forgeml" / "x").write_text("state")
    (tmp_path / "notes.txt").write_text("n")
    snap = take_snapshot(tmp_path, "archive", exclude=("*.txt",))
    assert set(snap.files) == {"a.py"}
    again = take_snapshot(tmp_path, "archive", exclude=("*.txt",))
    assert again.digest == snap.digest
    (tmp_path / "a.py").write_text("B\n")
    assert take_snapshot(tmp_path, "archive", exclude=("*.txt",)).digest != snap.digest
    archive = snap.write_archive(tmp_path / "code.tar.gz")
    import tarfile

    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["a.py"]


def test_snapshot_bad_inputs_are_clear(tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):
        take_snapshot(tmp_path / "missing")
    with pytest.raises(ValidationError, match="not one of"):
        take_snapshot(tmp_path, "zip")
    with pytest.raises(ValidationError, match="not inside a git repository"):
        take_snapshot(tmp_path, "git")


# ------------------------------------------------------------------ attempts
def test_handles_round_trip_and_reject_other_schemes():
    handle = make_handle("ssh", "alice", "gpu1.lab", 2222, "/home/alice/.forgeml-remote/jobs/j 1-a1", "j 1")
    h = parse_handle(handle, "ssh")
    assert (h.user, h.host, h.port, h.job_dir, h.job_id) == ("alice", "gpu1.lab", 2222,
                                                             "/home/alice/.forgeml-remote/jobs/j 1-a1", "j 1")
    with pytest.raises(ValidationError, match="not a slurm job handle"):
        parse_handle(handle, "slurm")


@pytest.mark.parametrize(("line", "state", "code"), [
    ("0|123|0|0", "succeeded", 0),
    ("3|123|0|0", "failed", 3),
    ("|123|1|0", "running", None),
    ("|123|0|1", "cancelled", None),
    ("143|123|0|1", "cancelled", 143),
    ("0|123|0|1", "succeeded", 0),
    ("|123|0|0", "lost", None),
    ("||0|0", "running", None),
    ("missing", "lost", None),
])
def test_pid_and_exit_files_map_to_states(line, state, code):
    status = parse_status(line)
    assert (status.state, status.exit_code) == (state, code)


def test_remote_env_repoints_forgeml_paths_and_drops_this_machines_variables(monkeypatch):
    monkeypatch.setenv("SOME_LOCAL", "x")
    env = {"FORGEML_HOME": "/local/ws", "FORGEML_RUN_ID": "r1", "PATH": "/usr/bin", "SOME_LOCAL": "x",
           "CUDA_VISIBLE_DEVICES": "0", "WANDB_MODE": "off"}
    req = LaunchRequest("j1", 1, ["python", "t.py"], env, "/w", "/l", spec={"env": {"SEED": 7}})
    out = remote_env(req, "/remote/ws", "/remote/jobs/j1-a1")
    assert out["FORGEML_HOME"] == "/remote/ws" and out["FORGEML_RUN_ID"] == "r1"
    assert out["FORGEML_CHECKPOINT_DIR"] == "/remote/jobs/j1-a1/checkpoints"
    assert out["SEED"] == "7" and out["WANDB_MODE"] == "off"
    assert not {"PATH", "SOME_LOCAL", "CUDA_VISIBLE_DEVICES"} & set(out)


def test_needs_come_from_the_job_spec():
    from forgeml.jobs import JobSpec

    spec = JobSpec(script="t.py", gpus=2, gpu_type="A100", cpus=8, memory_mb=32000, timeout_s=3600)
    needs = needs_of(LaunchRequest("j", 1, ["x"], {}, "/", "/l", cpus=8, memory_mb=32000, timeout_s=3600, spec=spec))
    assert (needs.gpus, needs.gpu_type, needs.cpus, needs.memory_mb, needs.timeout_s) == (2, "A100", 8, 32000, 3600)
    with pytest.raises(ValidationError, match="-1 GPUs"):
        needs_of(LaunchRequest("j", 1, ["x"], {}, "/", "/l", spec={"gpus": -1}))


def test_nvidia_smi_parsing_and_gpu_choice():
    out = ("0, NVIDIA A100-SXM4-80GB, 81920, 1000, 97, GPU-aaa\n"
           "1, NVIDIA A100-SXM4-80GB, 81920, 80000, 0, GPU-bbb\n"
           "2, NVIDIA GeForce RTX 4090, 24564, [N/A], 3, GPU-ccc\n")
    devices = parse_nvidia_smi(out)
    assert [d.index for d in devices] == [0, 1, 2] and devices[2].memory_free_mb == 0
    assert [d.index for d in pick_gpus(devices, 1, "a100")] == [1]
    assert pick_gpus(devices, 3, "A100") is None
    assert parse_nvidia_smi("NVIDIA-SMI has failed\n") == []


# ------------------------------------------------------------------ sbatch rendering
def _render(needs_spec, **settings):
    from forgeml.jobs import JobSpec

    spec = JobSpec(**needs_spec)
    req = LaunchRequest("j1", 1, spec.argv("python3"), {}, "/w", "/l", cpus=spec.cpus, memory_mb=spec.memory_mb,
                        timeout_s=spec.timeout_s, spec=spec)
    return render_sbatch("forgeml-j1", "/shared/jobs/j1-a1", spec.argv("python3"), {"FORGEML_RUN_ID": "r1"},
                         needs_of(req), SlurmTargetSettings(**settings), "src", spec.nproc)


def test_sbatch_has_resources_partition_account_and_time():
    script = _render({"script": "train.py", "gpus": 2, "gpu_type": "a100", "cpus": 7.5, "memory_mb": 16000,
                      "timeout_s": 90061},
                     partition="gpu", account="lab", qos="high", sbatch_args=["--constraint=nvlink"],
                     setup=["module load cuda"]).text
    for line in ["#SBATCH --gres=gpu:a100:2", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=16000M",
                 "#SBATCH --time=1-01:01:01", "#SBATCH --partition=gpu", "#SBATCH --account=lab",
                 "#SBATCH --qos=high", "#SBATCH --constraint=nvlink", "#SBATCH --output=/shared/jobs/j1-a1/output.log",
                 "module load cuda", "export FORGEML_RUN_ID=r1", "cd /shared/jobs/j1-a1/code/src"]:
        assert line in script, line
    assert "CUDA_VISIBLE_DEVICES=" not in script
    assert subprocess.run(["bash", "-n"], input=script.encode()).returncode == 0


def test_cpu_job_hides_gpus_and_uses_the_default_time_limit():
    script = _render({"command": ["python3", "prep.py", "--fast"]}, time_limit="02:00:00").text
    assert "export CUDA_VISIBLE_DEVICES=" in script and "--gres" not in script
    assert "#SBATCH --time=02:00:00" in script
    assert "python3 prep.py --fast" in script


def test_multi_node_ddp_uses_srun_and_torchrun_with_the_slurm_rendezvous():
    script = _render({"script": "train.py", "args": ["--epochs", "3"], "gpus": 4, "framework": "pytorch"},
                     nodes=2)
    text = script.text
    # the executor widens nodes from settings; render directly with two nodes here
    from forgeml.plugins.remote.jobdir import Needs

    text = render_sbatch("n", "/s/j", ["python3", "-m", "torch.distributed.run", "--standalone",
                                       "--nproc-per-node=4", "train.py", "--epochs", "3"], {},
                         Needs(gpus=4, nodes=2), SlurmTargetSettings()).text
    assert "#SBATCH --nodes=2" in text and "#SBATCH --gres=gpu:4" in text
    assert 'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in text
    assert ("srun --ntasks-per-node=1 python3 -m torch.distributed.run --nnodes=$SLURM_NNODES "
            "--nproc-per-node=4 --rdzv-id=$SLURM_JOB_ID --rdzv-backend=c10d "
            "--rdzv-endpoint=$MASTER_ADDR:$MASTER_PORT train.py --epochs 3") in text
    assert "--standalone" not in text
    assert "--standalone" in script.text  # one node: single-node torchrun as the spec made it


def test_array_jobs_for_tuning_trials():
    from forgeml.plugins.remote.jobdir import Needs

    script = render_sbatch("trials", "/s/j", ["python3", "trial.py"], {}, Needs(gpus=1, array=8),
                           SlurmTargetSettings())
    assert "#SBATCH --array=0-7" in script.text
    assert "export FORGEML_TRIAL_INDEX=$SLURM_ARRAY_TASK_ID" in script.text
    assert "#SBATCH --output=/s/j/output-%a.log" in script.text and script.log_name == "output-0.log"
    assert "exit_code.$SLURM_ARRAY_TASK_ID" in script.text
    with pytest.raises(ValidationError):
        render_sbatch("t", "/s/j", ["x"], {}, Needs(array=0), SlurmTargetSettings())
    with pytest.raises(ValidationError, match="empty command"):
        render_sbatch("t", "/s/j", [], {}, Needs(), SlurmTargetSettings())


def test_slurm_time_rounds_up_to_whole_seconds_and_at_least_a_minute():
    assert slurm_time(1) == "00:01:00"
    assert slurm_time(3600.2) == "01:00:01"
    assert slurm_time(2 * 86400) == "2-00:00:00"


# ------------------------------------------------------------------ Slurm states
@pytest.mark.parametrize(("state", "exit_code", "reason", "expected", "code"), [
    ("PENDING", "0:0", "Resources", "running", None),
    ("PD", None, "", "running", None),
    ("RUNNING", "0:0", "None", "running", None),
    ("COMPLETING", "0:0", "", "running", None),
    ("COMPLETED", "0:0", "", "succeeded", 0),
    ("FAILED", "3:0", "NonZeroExitCode", "failed", 3),
    ("CANCELLED by 0", "0:15", "", "cancelled", -15),
    ("TIMEOUT", "0:15", "", "failed", -15),
    ("OUT_OF_MEMORY", "0:125", "", "failed", -125),
    ("NODE_FAIL", "0:0", "", "failed", 0),
    ("PREEMPTED", "0:0", "", "failed", 0),
    ("BOGUS_STATE", "0:0", "", "lost", 0),
])
def test_slurm_states_map_to_executor_states(state, exit_code, reason, expected, code):
    status = slurm_status(state, exit_code, reason)
    assert (status.state, status.exit_code) == (expected, code)
    if state in {"PENDING", "PD"}:
        assert status.reason.startswith("queued")


def test_scontrol_records_and_array_tasks_fold_into_one_status():
    text = ("JobId=41 ArrayJobId=40 ArrayTaskId=0 JobName=t JobState=COMPLETED Reason=None ExitCode=0:0 "
            "Command=/s/j/job.sbatch\n"
            "JobId=42 ArrayJobId=40 ArrayTaskId=1 JobName=t JobState=FAILED Reason=NonZeroExitCode ExitCode=2:0\n")
    records = parse_scontrol(text)
    assert [r["JobState"] for r in records] == ["COMPLETED", "FAILED"]
    status = status_from_records(records)
    assert (status.state, status.exit_code) == ("failed", 2) and "1/2" in status.reason
    pending = parse_scontrol("JobId=40 ArrayJobId=40 ArrayTaskId=2-7 JobState=PENDING Reason=Resources ExitCode=0:0")
    assert status_from_records(records[:1] + pending).state == "running"
    assert status_from_records([]).state == "lost"
    assert parse_sbatch_id("1234;cluster\n") == "1234"
    with pytest.raises(ValidationError):
        parse_sbatch_id("sbatch: error: Batch job submission failed")


def test_import_forgeml_stays_free_of_paramiko_and_kubernetes():
    code = ("import sys, forgeml, forgeml.plugins.remote, forgeml.plugins.ssh, forgeml.plugins.slurm, forgeml.plugins.kubernetes;"
            "bad = [m for m in ('paramiko', 'kubernetes') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
