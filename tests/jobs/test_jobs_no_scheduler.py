"""Submitting with no scheduler running says so and how to start one, or starts one when configured to."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from jobs_support import FAST_CONFIG, write_script
from test_jobs_cli import run


def test_submit_without_a_scheduler_says_the_job_waits_and_how_to_start_one(jobs_ws, capsys) -> None:
    write_script(jobs_ws, "train.py", "print('hello')\n")
    code, out, err = run(capsys, "submit", "train.py", "--json")
    job = json.loads(out)
    assert code == 0 and job["state"] == "PENDING"
    assert f"No scheduler is running for this workspace, so job {job['id']} waits in the queue" in err
    assert "`forgeml scheduler`" in err and "autostart = true" in err
    code, out, err = run(capsys, "jobs", "logs", job["id"])
    assert code == 0 and out == ""
    assert f"job {job['id']} is pending" in err and "no scheduler is running" in err
    # once a scheduler ran the job, nothing more is said
    assert run(capsys, "scheduler", "--until-idle")[0] == 0
    code, out, err = run(capsys, "jobs", "logs", job["id"])
    assert out == "hello\n" and err == ""


def test_autostart_starts_a_background_scheduler_that_runs_the_job(jobs_ws, capsys) -> None:
    from forgeml.workspace import Workspace, set_current

    (Path(jobs_ws.root) / "plugins.toml").write_text(FAST_CONFIG.replace("[scheduler]\n", "[scheduler]\nautostart = true\n"))
    ws = Workspace(jobs_ws.root)
    set_current(ws)
    write_script(ws, "train.py", "print('from the background')\n")
    code, out, err = run(capsys, "submit", "train.py", "--json")
    job = json.loads(out)
    assert code == 0 and "Started a scheduler for this workspace in the background (pid " in err
    pid = int(err.split("(pid ")[1].split(")")[0])
    try:
        from forgeml.jobs import wait

        assert wait(job["id"], workspace=ws, timeout=60).state == "SUCCEEDED"
        code, out, err = run(capsys, "submit", "train.py", "--json")  # the running one is used, not a second
        assert code == 0 and err == ""
    finally:
        os.kill(pid, signal.SIGTERM)
        for _ in range(200):  # the scheduler is this process's child: reap it
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                break
            time.sleep(0.05)
        ws.close()
