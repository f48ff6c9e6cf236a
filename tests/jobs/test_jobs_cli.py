"""The job commands: submit, jobs ls/show/logs/cancel/retry/wait, scheduler --until-idle, with --json.

GPUs come from the ``declared`` inventory (4 fake H100s).
"""

from __future__ import annotations

import json

import pytest
from jobs_support import write_script

from forgeml.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(argv))
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_submit_run_and_inspect(jobs_ws, capsys) -> None:
    """Submit with flags and script arguments after --, run the queue, then ls/show/logs/wait as JSON."""
    write_script(jobs_ws, "train.py", "import os, sys\nprint('args', sys.argv[1:], os.environ['FORGEML_PARAMS'])\n")
    code, out, _ = run(capsys, "submit", "train.py", "--gpus", "2", "--gpu-type", "H100", "--param", "lr=1e-3",
                       "--priority", "5", "--retries", "2", "--name", "first", "--json", "--", "--epochs", "3")
    assert code == 0
    job = json.loads(out)
    assert (job["state"], job["priority"], job["spec"]["gpus"], job["spec"]["args"]) == ("PENDING", 5, 2,
                                                                                       ["--epochs", "3"])
    assert run(capsys, "scheduler", "--until-idle")[0] == 0
    code, out, _ = run(capsys, "jobs", "ls", "--json")
    assert [j["state"] for j in json.loads(out)] == ["SUCCEEDED"]
    code, out, _ = run(capsys, "jobs", "show", job["id"][:6], "--json")
    shown = json.loads(out)
    assert shown["attempt_history"][0]["exit_code"] == 0 and shown["events"][-1]["new_state"] == "SUCCEEDED"
    code, out, _ = run(capsys, "jobs", "logs", job["id"])
    assert "args ['--epochs', '3'] {\"lr\": 0.001}" in out
    assert run(capsys, "jobs", "wait", job["id"], "--timeout", "5")[0] == 0


def test_errors_are_one_line_with_exit_code_2(jobs_ws, capsys) -> None:
    """Bad input prints one 'forgeml: error:' line and exits 2, queueing nothing."""
    write_script(jobs_ws, "train.py", "pass\n")
    for argv, message in [
        (("submit", "train.py", "--memory", "16Gx"), "bad memory '16Gx'"),
        (("submit", "missing.py"), "script 'missing.py' not found"),
        (("submit", "train.py", "--gpus", "9"), "has 4"),
        (("jobs", "show", "nope"), "no job 'nope'"),
    ]:
        code, _, err = run(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and message in err, err
    assert json.loads(run(capsys, "jobs", "ls", "--json")[1]) == []


def test_cancel_retry_and_failed_wait(jobs_ws, capsys) -> None:
    """cancel a pending job, retry it, and `jobs wait` exits 1 for a job that did not succeed."""
    write_script(jobs_ws, "train.py", "pass\n")
    job = json.loads(run(capsys, "submit", "train.py", "--json")[1])
    code, out, _ = run(capsys, "jobs", "cancel", job["id"], "--json")
    assert json.loads(out)[0]["state"] == "CANCELLED"
    code, _, _ = run(capsys, "jobs", "wait", job["id"])
    assert code == 1
    assert json.loads(run(capsys, "jobs", "retry", job["id"], "--json")[1])["state"] == "PENDING"
    code, _, err = run(capsys, "jobs", "retry", job["id"])
    assert code == 2 and "only FAILED or CANCELLED" in err


@pytest.mark.parametrize("state", ["bogus"])
def test_ls_rejects_an_unknown_state(jobs_ws, capsys, state) -> None:
    """--state with a typo is an error listing the states."""
    code, _, err = run(capsys, "jobs", "ls", "--state", state)
    assert code == 2 and "PENDING" in err


def test_logs_follow_streams_until_the_job_ends(jobs_ws, capsys) -> None:
    """`jobs logs -f` prints output while the job runs and returns when it ends."""
    from forgeml.jobs import Scheduler

    write_script(jobs_ws, "talk.py", "import time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.2)\n")
    job = json.loads(run(capsys, "submit", "talk.py", "--json")[1])
    scheduler = Scheduler(jobs_ws).start_in_thread()
    try:
        code, out, _ = run(capsys, "jobs", "logs", "-f", job["id"])
    finally:
        scheduler.stop()
    assert code == 0 and [line for line in out.splitlines() if line.startswith("line")] == ["line 0", "line 1", "line 2"]
