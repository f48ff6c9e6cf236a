"""The real services the integration tests rely on answer: Redis, OpenSSH and Slurm on loopback."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

pytestmark = pytest.mark.service


def test_redis_answers_ping(redis_url: str) -> None:
    """A PING through the redis client returns True and a key round-trips."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
        client.set("forgeml:test_services:key", "value", ex=30)
        assert client.get("forgeml:test_services:key") == b"value"
    finally:
        client.close()


def test_sshd_runs_a_command(sshd_server) -> None:
    """An SSH exec of ``echo hi`` through paramiko, with strict host-key checking, prints hi."""
    client = sshd_server.connect()
    try:
        _, stdout, stderr = client.exec_command("echo hi", timeout=20)
        assert stdout.read().decode().strip() == "hi"
        assert stdout.channel.recv_exit_status() == 0, stderr.read().decode()
    finally:
        client.close()
    assert sshd_server["port"] == sshd_server.port


def _job_state(job_id: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        ["scontrol", "show", "job", job_id], env=env, capture_output=True, text=True, timeout=10
    ).stdout
    match = re.search(r"JobState=(\w+)", out)
    return match.group(1) if match else "UNKNOWN"


def test_slurm_runs_a_batch_job_with_a_gpu(slurm_cluster, tmp_path) -> None:
    """An ``sbatch --wrap`` job asking for one fake GPU finishes COMPLETED and sees its GPU."""
    assert slurm_cluster.gpus == 2
    env = slurm_cluster.command_env()
    out_file = tmp_path / "job.out"
    proc = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--gres=gpu:1",
            f"--output={out_file}",
            "--wrap",
            'echo "gpu=$CUDA_VISIBLE_DEVICES"',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    job_id = proc.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 90
    state = _job_state(job_id, env)
    while state in {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "UNKNOWN"}:
        assert time.monotonic() < deadline, f"job {job_id} still {state}"
        time.sleep(0.5)
        state = _job_state(job_id, env)
    assert state == "COMPLETED"
    assert re.fullmatch(r"gpu=\d", out_file.read_text().strip())
