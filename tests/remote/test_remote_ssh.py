"""The ssh executor against a real OpenSSH server on 127.0.0.1 (no mocks: paramiko, SFTP, sshd)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from forgeml.contracts import ExecutionStatus, LaunchRequest
from forgeml.errors import ConfigError, JobError, RemoteError
from forgeml.plugins.remote.jobdir import parse_handle
from forgeml.plugins.ssh.executor import SshExecutor
from forgeml.plugins.ssh.settings import SshTargetSettings

pytestmark = pytest.mark.service


def wait_done(executor, handle: str, timeout: float = 40.0) -> ExecutionStatus:
    """Poll until the attempt leaves the running state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = executor.poll(handle)
        if status.state != "running":
            return status
        time.sleep(0.2)
    raise AssertionError(f"attempt {handle} still running after {timeout}s")


def request(job_code: Path, tmp_path: Path, job_id: str, argv: list[str], env=None, spec=None) -> LaunchRequest:
    """A launch request for a script in the job code folder."""
    return LaunchRequest(job_id=job_id, attempt=1, argv=[sys.executable, *argv], env=dict(env or {}),
                         workdir=str(job_code), log_path=str(tmp_path / f"{job_id}.log"), spec=spec)


def test_unchanged_files_are_not_sent_again(workspace, ssh_settings, job_code, tmp_path):
    from forgeml.plugins.remote.snapshot import take_snapshot
    from forgeml.plugins.remote.sync import sync_snapshot

    executor = SshExecutor(ssh_settings, workspace)
    host = executor.host(executor.endpoints[0])
    root = f"{ssh_settings.remote_root}/synctest"
    snap = take_snapshot(job_code)
    first = sync_snapshot(host, root, f"{root}/jobs/a", snap)
    second = sync_snapshot(host, root, f"{root}/jobs/b", snap)
    assert first.files == second.files == 4
    assert second.sent == 0 and second.bytes_sent == 0
    (job_code / "new_module.py").write_text("X = 1\n")
    try:
        third = sync_snapshot(host, root, f"{root}/jobs/c", take_snapshot(job_code))
    finally:
        (job_code / "new_module.py").unlink()
    assert third.sent == 1
    assert host.read_bytes(f"{root}/jobs/c/code/new_module.py") == b"X = 1\n"


def test_cancel_stops_the_process_group(workspace, ssh_settings, job_code, tmp_path):
    executor = SshExecutor(ssh_settings, workspace)
    handle = executor.launch(request(job_code, tmp_path, "ssh-cancel", ["sleeper.py", "120"]))
    assert executor.poll(handle).state == "running"
    executor.cancel(handle, grace_s=2)
    status = wait_done(executor, handle, timeout=20)
    assert status.state == "cancelled", status
    host = executor.host(executor.endpoints[0])
    job_dir = parse_handle(handle, "ssh").job_dir
    pid = host.read_bytes(f"{job_dir}/pid").decode().strip()
    # the python child in the group is gone too, not only the shell
    in_group = host.run(f"cat /proc/[0-9]*/stat 2>/dev/null | awk '$5 == {pid} && $3 != \"Z\"' | wc -l")
    assert in_group.stdout.strip() == "0"


def test_job_survives_a_dropped_connection_and_a_fresh_executor_reattaches(workspace, ssh_settings, job_code,
                                                                           tmp_path):
    from forgeml.tracking import create_run, get_metric_history, get_run

    run = create_run("reattach", "default")
    ssh_settings.sync_interval_s = 0.5
    executor = SshExecutor(ssh_settings, workspace)
    handle = executor.launch(request(job_code, tmp_path, "ssh-drop", ["tracked.py", "5", "0.05", "go"],
                                     env={"FORGEML_RUN_ID": run.id}))
    assert executor.poll(handle).state == "running"
    host = executor.host(executor.endpoints[0])
    host.client().get_transport().close()  # the network drops mid-job
    assert executor.poll(handle).state == "running"  # reconnects on its own
    executor.close()
    # a new process (a restarted scheduler) knows only the handle
    fresh = SshExecutor(ssh_settings, workspace)
    deadline = time.monotonic() + 40
    while (status := fresh.poll(handle)).state == "running" and time.monotonic() < deadline:
        if len(get_metric_history(run.id, "loss")) == 5:
            break  # every point came back while the job still runs (it waits for the go file)
        time.sleep(0.2)
    assert status.state == "running", "metrics were not brought back incrementally while the job ran"
    job_dir = parse_handle(handle, "ssh").job_dir
    fresh.host(fresh.endpoints[0]).write_bytes(f"{job_dir}/code/go", b"")
    status = wait_done(fresh, handle)
    assert status.state == "succeeded", status
    assert get_run(run.id).metrics["loss"] == pytest.approx(1 / 5)
    assert "done" in (tmp_path / "ssh-drop.log").read_text()
    text, offset = fresh.logs(handle, 0)
    assert "step 4" in text and offset == len(text.encode())
    assert fresh.logs(handle, offset) == ("", offset)


def test_failing_job_reports_its_exit_code(workspace, ssh_settings, job_code, tmp_path):
    executor = SshExecutor(ssh_settings, workspace)
    handle = executor.launch(request(job_code, tmp_path, "ssh-fail", ["fail.py"]))
    status = wait_done(executor, handle)
    assert (status.state, status.exit_code) == ("failed", 3)
    assert "about to fail" in (tmp_path / "ssh-fail.log").read_text()


def test_asking_for_gpus_on_a_cpu_only_host_is_a_clear_error(workspace, ssh_settings, job_code, tmp_path):
    executor = SshExecutor(ssh_settings, workspace)
    with pytest.raises(JobError, match="no host of this ssh target has 1 GPU"):
        executor.launch(request(job_code, tmp_path, "ssh-gpu", ["tracked.py"], spec={"gpus": 1}))


def test_gpus_found_by_nvidia_smi_are_pinned_most_free_first(workspace, ssh_settings, job_code, tmp_path):
    """GPUs cannot exist here: a stand-in nvidia-smi on the host's PATH reports two of them."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    smi = fake_bin / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '0, NVIDIA A100-SXM4-80GB, 81920, 2048, 95, GPU-aaa'\n"
                   "echo '1, NVIDIA A100-SXM4-80GB, 81920, 80000, 0, GPU-bbb'\n")
    smi.chmod(0o755)
    ssh_settings.env = {"PATH": f"{fake_bin}:/usr/local/bin:/usr/bin:/bin"}
    executor = SshExecutor(ssh_settings, workspace)
    assert "2 GPUs: NVIDIA A100-SXM4-80GB (80 GiB)" in executor.check()[-1].detail
    handle = executor.launch(request(job_code, tmp_path, "ssh-gpu1", ["gpu.py"], spec={"gpus": 1, "gpu_type": "a100"}))
    assert wait_done(executor, handle).state == "succeeded"
    assert "CUDA_VISIBLE_DEVICES=1" in (tmp_path / "ssh-gpu1.log").read_text()
    with pytest.raises(JobError, match="2 GPUs: NVIDIA A100"):
        executor.launch(request(job_code, tmp_path, "ssh-gpu3", ["gpu.py"], spec={"gpus": 3}))


def test_unknown_host_key_and_missing_key_file_are_refused(workspace, ssh_settings, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    strict = SshExecutor(SshTargetSettings(**{**ssh_settings.__dict__, "known_hosts": str(empty)}), workspace)
    checks = strict.check()
    assert not checks[0].ok and "known_hosts" in checks[0].detail
    with pytest.raises(RemoteError, match="not in"):
        strict.host(strict.endpoints[0]).run("true")
    nokey = SshExecutor(SshTargetSettings(**{**ssh_settings.__dict__, "key_files": [str(tmp_path / "nokey")]}),
                        workspace)
    with pytest.raises(ConfigError, match="does not exist"):
        nokey.host(nokey.endpoints[0]).run("true")
    with pytest.raises(ConfigError, match="as \\[user@\\]host\\[:port\\]"):
        SshExecutor(SshTargetSettings(**{**ssh_settings.__dict__, "hosts": ["gpu1:twenty"]}), workspace)


def test_check_reports_login_forgeml_and_gpus(workspace, ssh_settings):
    checks = {c.name.split(" ")[0]: c for c in SshExecutor(ssh_settings, workspace).check()}
    assert checks["ssh"].ok and checks["forgeml"].ok
    assert "CPU only" in checks["gpus"].detail


def test_polling_an_unreachable_host_keeps_the_job_running_with_the_reason(workspace, tmp_path):
    settings = SshTargetSettings(hosts=["127.0.0.1:1"], use_agent=False, strict_host_keys=False,
                                 connect_timeout_s=3.0)
    status = SshExecutor(settings, workspace).poll(f"ssh://me@127.0.0.1:1{tmp_path}/jobs/j-a1#j")
    assert status.state == "running" and "unreachable" in status.reason and "cannot reach" in status.reason
