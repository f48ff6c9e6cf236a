"""Crash recovery: kill -9 the scheduler process while jobs run, start it again, lose nothing.

The scheduler runs as a real subprocess (`python -m forgeml scheduler`); GPUs come from the
``declared`` inventory (4 fake H100s).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from jobs_support import write_script

from forgeml.jobs import JobSpec, get_job, job_attempts, submit, wait

HOLD = """
import os, time
from pathlib import Path
root = Path(os.environ["FORGEML_HOME"])
(root / f"pid-{os.environ['FORGEML_JOB_ID']}-{os.environ['FORGEML_ATTEMPT']}").write_text(str(os.getpid()))
while not (root / "release").exists():
    time.sleep(0.05)
print("released", flush=True)
"""


def _scheduler(ws) -> subprocess.Popen:
    env = {**os.environ, "FORGEML_HOME": str(ws.root)}
    return subprocess.Popen([sys.executable, "-m", "forgeml", "scheduler"], cwd=ws.root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _until(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_kill_9_then_restart_adopts_live_jobs_and_retries_dead_ones(jobs_ws) -> None:
    """Live job: adopted (same process, one attempt). Job killed meanwhile: retried. Pending job: runs."""
    write_script(jobs_ws, "hold.py", HOLD)
    root = Path(jobs_ws.root)
    survivor = submit(JobSpec(script="hold.py", gpus=1), jobs_ws)
    victim = submit(JobSpec(script="hold.py", gpus=1, retries=1), jobs_ws)
    queued = submit(JobSpec(script="hold.py", gpus=4), jobs_ws)
    first = _scheduler(jobs_ws)
    try:
        _until(lambda: (root / f"pid-{survivor.id}-1").exists() and (root / f"pid-{victim.id}-1").exists())
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        survivor_pid = int((root / f"pid-{survivor.id}-1").read_text())
        os.kill(survivor_pid, 0)  # the job outlived its scheduler
        handle = json.loads(get_job(victim.id, jobs_ws).handle)
        os.killpg(handle["pid"], signal.SIGKILL)  # and this one dies while no scheduler watches
        late = submit(JobSpec(script="hold.py"), jobs_ws)
        assert {get_job(j.id, jobs_ws).state for j in (survivor, victim)} == {"RUNNING"}
        second = _scheduler(jobs_ws)
        try:
            _until(lambda: (root / f"pid-{victim.id}-2").exists())
            (root / "release").write_text("go")
            for job in (survivor, victim, queued, late):
                assert wait(job.id, timeout=40, workspace=jobs_ws).state == "SUCCEEDED", get_job(job.id, jobs_ws).reason
        finally:
            second.kill()
            second.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    adopted = get_job(survivor.id, jobs_ws)
    assert adopted.attempts == 1 and len(job_attempts(survivor.id, jobs_ws)) == 1
    retried = job_attempts(victim.id, jobs_ws)
    assert len(retried) == 2 and retried[0]["outcome"] == "lost" and retried[1]["outcome"] == "succeeded"
    assert get_job(victim.id, jobs_ws).failures == 1
