"""SSH and Slurm jobs get the secrets the workspace's plugins.toml reads, as local jobs do, and nothing else
of the scheduler's environment; the script that exports them is readable by its owner only.

Both run through forgeml's scheduler on the loopback sshd and Slurm services (tests/services/*.sh).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.service

SHOW_ENV = """
import os
for name in ("LAB_TOKEN", "FORGEML_PG_URL", "UNRELATED_LOCAL"):
    print(f"{name}={os.environ.get(name, '<unset>')}")
"""

NOTIFIER = """
[monitoring.notifiers.team]
plugin = "webhook"
url = "http://127.0.0.1:9/hook"
token = { env = "LAB_TOKEN" }
"""


def _ssh_target(sshd_server, remote_root: str) -> str:
    return f"""
[compute.targets.lab]
plugin = "ssh"
hosts = ["{sshd_server.host}:{sshd_server.port}"]
user = "{sshd_server.user}"
key_files = {json.dumps([sshd_server.key_filename])}
use_agent = false
known_hosts = "{sshd_server.known_hosts}"
remote_root = "{remote_root}"
python = "{sys.executable}"
"""


def _slurm_target(slurm_cluster, remote_root: str) -> str:
    env = ", ".join(f"{k} = {json.dumps(v)}" for k, v in slurm_cluster.env.items())
    return f"""
[compute.targets.lab]
plugin = "slurm"
env = {{ {env} }}
remote_root = "{remote_root}"
python = "{sys.executable}"
partition = "{slurm_cluster.partition}"
"""


@pytest.fixture(params=["ssh", "slurm"])
def remote_target(request: pytest.FixtureRequest, remote_root: str) -> tuple[str, str]:
    """The plugins.toml table of an ssh or a slurm target on the loopback services, and its script's name."""
    if request.param == "ssh":
        return _ssh_target(request.getfixturevalue("sshd_server"), remote_root), "run.sh"
    return _slurm_target(request.getfixturevalue("slurm_cluster"), remote_root), "job.sbatch"


@pytest.mark.parametrize("metadata_backend", ["sqlite", "postgres"], indirect=True)
def test_a_remote_job_gets_the_workspaces_secrets_and_only_those(workspace, remote_target, remote_root, tmp_path,
                                                                  monkeypatch, metadata_backend):
    """LAB_TOKEN (read by a notifier's settings) and, on PostgreSQL, FORGEML_PG_URL reach the job; others do not."""
    from forgeml.jobs import SUCCEEDED, JobSpec, Scheduler, get_job, read_logs, submit
    from forgeml.workspace import Workspace, set_current

    target, script = remote_target
    monkeypatch.setenv("LAB_TOKEN", "tok en'with quotes")
    monkeypatch.setenv("UNRELATED_LOCAL", "stays here")
    code = tmp_path / "code"
    code.mkdir()
    (code / "show_env.py").write_text(SHOW_ENV)
    conf = workspace.root / "plugins.toml"
    conf.write_text(conf.read_text() + NOTIFIER + target)
    ws = Workspace(workspace.root)
    set_current(ws)
    try:
        job = submit(JobSpec(script="show_env.py", workdir=str(code), target="lab"), ws)
        Scheduler(ws).run_until_idle(timeout=120)
        done = get_job(job.id, ws)
        assert done.state == SUCCEEDED, done
        log, _ = read_logs(job.id, workspace=ws)
        assert "LAB_TOKEN=tok en'with quotes" in log, log
        if script == "run.sh":  # sbatch run here exports the submitting process's environment (Slurm's default)
            assert "UNRELATED_LOCAL=<unset>" in log, log
        if metadata_backend == "postgres":  # the metadata store's url = { env = "FORGEML_PG_URL" }
            assert f"FORGEML_PG_URL={os.environ['FORGEML_PG_URL']}" in log, log
        (written,) = [p for p in Path(remote_root, "jobs").glob(f"*{job.id}*/{script}")]
        assert stat.S_IMODE(written.stat().st_mode) == 0o600, oct(written.stat().st_mode)
    finally:
        set_current(workspace)
        ws.close()
