"""Fixtures for the remote compute tests: job code folders and SSH / Slurm targets on the loopback services."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from forgeml.plugins.slurm.settings import SlurmTargetSettings
from forgeml.plugins.ssh.settings import SshTargetSettings

# A training script that logs through forgeml's tracking API, as a real job would.
TRACKED_JOB = textwrap.dedent('''
    import os, sys, time
    import forgeml

    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    pause = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1
    gate = sys.argv[3] if len(sys.argv) > 3 else ""  # wait for this file before finishing
    print("CUDA_VISIBLE_DEVICES=" + os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"), flush=True)
    with forgeml.start_run():
        forgeml.log_params({"lr": 0.1, "steps": steps})
        for i in range(steps):
            forgeml.log_metrics({"loss": 1.0 / (i + 1)}, step=i)
            forgeml.flush()
            print("step", i, flush=True)
            time.sleep(pause)
        deadline = time.time() + 60
        while gate and not os.path.exists(gate) and time.time() < deadline:
            time.sleep(0.1)
        with open("model.txt", "w") as f:
            f.write("weights after %d steps" % steps)
        forgeml.log_artifact("model.txt")
    print("done", flush=True)
''')

SLEEPER_JOB = textwrap.dedent('''
    import signal, sys, time
    print("started", flush=True)
    time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 60)
''')


@pytest.fixture(scope="session")
def job_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of job code (not a git repository): the archive snapshot is used."""
    code = tmp_path_factory.mktemp("code")
    (code / "tracked.py").write_text(TRACKED_JOB)
    (code / "sleeper.py").write_text(SLEEPER_JOB)
    (code / "gpu.py").write_text("import os\nprint('CUDA_VISIBLE_DEVICES=' + os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>'))\n")
    (code / "fail.py").write_text("import sys\nprint('about to fail', flush=True)\nsys.exit(3)\n")
    return code


@pytest.fixture(scope="session")
def remote_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The remote root folder, shared by the tests so the remote workspace is set up once."""
    return str(tmp_path_factory.mktemp("remote-root"))


@pytest.fixture
def ssh_settings(sshd_server, remote_root: str) -> SshTargetSettings:
    """Settings of an ssh target pointing at the loopback sshd, with key and known_hosts by path."""
    return SshTargetSettings(
        hosts=[f"{sshd_server.host}:{sshd_server.port}"], user=sshd_server.user,
        key_files=[sshd_server.key_filename], use_agent=False, known_hosts=sshd_server.known_hosts,
        remote_root=remote_root, python=sys.executable, sync_interval_s=30.0,
    )


@pytest.fixture
def slurm_settings(slurm_cluster, remote_root: str) -> SlurmTargetSettings:
    """Settings of a slurm target that runs sbatch on this machine against the loopback cluster."""
    return SlurmTargetSettings(env=dict(slurm_cluster.env), remote_root=remote_root,
                               python=sys.executable, sync_interval_s=30.0, partition=slurm_cluster.partition)
