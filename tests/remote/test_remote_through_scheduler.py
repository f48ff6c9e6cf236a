"""End to end: a job submitted to an ssh target runs through forgeml's scheduler on the loopback sshd,
and its metrics, artifacts and log come back into the local workspace."""

from __future__ import annotations

import json
import sys

import pytest

pytestmark = pytest.mark.service


def test_submit_to_an_ssh_target_runs_through_the_scheduler(workspace, sshd_server, remote_root, job_code):
    from forgeml.jobs import SUCCEEDED, JobSpec, Scheduler, get_job, read_logs, submit
    from forgeml.tracking import get_metric_history, get_run, list_artifacts
    from forgeml.workspace import Workspace, set_current

    conf = workspace.root / "plugins.toml"
    conf.write_text(conf.read_text() + f"""
[compute.targets.lab]
plugin = "ssh"
hosts = ["{sshd_server.host}:{sshd_server.port}"]
user = "{sshd_server.user}"
key_files = {json.dumps([sshd_server.key_filename])}
use_agent = false
known_hosts = "{sshd_server.known_hosts}"
remote_root = "{remote_root}"
python = "{sys.executable}"
""")
    ws = Workspace(workspace.root)
    set_current(ws)
    try:
        job = submit(JobSpec(script="tracked.py", args=["3"], workdir=str(job_code), target="lab",
                             params={"lr": 0.1}), ws)
        Scheduler(ws).run_until_idle(timeout=90)
        done = get_job(job.id, ws)
        assert done.state == SUCCEEDED, done
        run = get_run(done.run_id)
        assert run.params["lr"] == "0.1" and run.tags["forgeml.target"].startswith("ssh:")
        assert list(get_metric_history(run.id, "loss")["step"]) == [0, 1, 2]
        (artifact,) = list_artifacts(run.id)
        assert artifact.path == "model.txt"
        assert ws.artifacts.get_bytes(artifact.digest) == b"weights after 3 steps"
        log, _ = read_logs(job.id, workspace=ws)
        assert "step 2" in log and "done" in log
        # a CPU job sees no GPU even where the host has some
        assert "CUDA_VISIBLE_DEVICES=<unset>" in log
    finally:
        set_current(workspace)
        ws.close()
