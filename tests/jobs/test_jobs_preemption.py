"""Preemption: a higher-priority job stops a lower one with SIGTERM; the lower one resumes from its checkpoint.

GPUs come from the ``declared`` inventory (4 fake H100s); the jobs are real processes.
"""

from __future__ import annotations

import time

from jobs_support import write_script

from forgeml.jobs import JobSpec, Scheduler, get_job, job_attempts, job_events, read_logs, submit, wait

TRAIN = """
import json, os, signal, sys, time
from forgeml.jobs import checkpoint_dir, latest_checkpoint

start = 0
latest = latest_checkpoint("step-*.json")
if latest is not None:
    start = json.loads(latest.read_text())["step"] + 1
print(f"attempt {os.environ['FORGEML_ATTEMPT']} resumes at step {start}", flush=True)
stopping = False

def on_term(signum, frame):
    global stopping
    stopping = True

signal.signal(signal.SIGTERM, on_term)
for step in range(start, 60):  # 2.4 s of work: ample time to be preempted midway, even on a busy machine
    time.sleep(0.04)
    (checkpoint_dir() / f"step-{step:05d}.json").write_text(json.dumps({"step": step}))
    if stopping:
        print(f"preempted after step {step}", flush=True)
        sys.exit(0)
print("done", flush=True)
"""


def test_preempted_job_resumes_from_its_latest_checkpoint(jobs_ws) -> None:
    """The 4-GPU low-priority job is preempted for a 2-GPU urgent one, then resumes where it stopped."""
    write_script(jobs_ws, "train.py", TRAIN)
    write_script(jobs_ws, "urgent.py", "print('urgent work')\n")
    low = submit(JobSpec(script="train.py", gpus=4, priority=0), jobs_ws)
    scheduler = Scheduler(jobs_ws).start_in_thread()
    try:
        deadline = time.monotonic() + 20
        while len(list((jobs_ws.dot / "jobs" / low.id / "checkpoints").glob("step-*"))) < 4:
            assert time.monotonic() < deadline, "the low-priority job never got going"
            time.sleep(0.05)
        urgent = submit(JobSpec(script="urgent.py", gpus=2, priority=10), jobs_ws)
        assert wait(urgent.id, timeout=20, workspace=jobs_ws).state == "SUCCEEDED"
        final = wait(low.id, timeout=30, workspace=jobs_ws)
    finally:
        scheduler.stop()
    assert final.state == "SUCCEEDED" and final.preemptions == 1 and final.attempts == 2 and final.failures == 0
    first, second = job_attempts(low.id, jobs_ws)
    assert get_job(urgent.id, jobs_ws).started_at >= first["finished_at"]
    first_log = read_logs(low.id, attempt=1, workspace=jobs_ws)[0]
    second_log = read_logs(low.id, attempt=2, workspace=jobs_ws)[0]
    stopped_at = int(first_log.split("preempted after step ")[1].split()[0])
    assert f"attempt 2 resumes at step {stopped_at + 1}" in second_log and "done" in second_log
    assert any(f"preempted by job {urgent.id}" in e["reason"] for e in job_events(low.id, jobs_ws))


def test_non_preemptible_jobs_are_left_alone(jobs_ws) -> None:
    """A job marked preemptible=false keeps its GPUs; the urgent job waits for it."""
    write_script(jobs_ws, "short.py", "import time\ntime.sleep(0.8)\n")
    write_script(jobs_ws, "urgent.py", "pass\n")
    keep = submit(JobSpec(script="short.py", gpus=4, preemptible=False), jobs_ws)
    scheduler = Scheduler(jobs_ws).start_in_thread()
    try:
        deadline = time.monotonic() + 20
        while get_job(keep.id, jobs_ws).state != "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        urgent = submit(JobSpec(script="urgent.py", gpus=1, priority=10), jobs_ws)
        wait(urgent.id, timeout=20, workspace=jobs_ws)
    finally:
        scheduler.stop()
    kept = get_job(keep.id, jobs_ws)
    assert kept.state == "SUCCEEDED" and kept.preemptions == 0 and kept.attempts == 1
    assert get_job(urgent.id, jobs_ws).started_at >= kept.finished_at - 0.05
