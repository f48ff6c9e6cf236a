"""The scheduler end to end with real job processes: environment, exclusive GPUs, cancel, timeout, retry.

GPUs come from the ``declared`` inventory (4 fake H100s): placement and CUDA_VISIBLE_DEVICES are real,
the devices are not.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from jobs_support import write_script

from forgeml import hookimpl
from forgeml.errors import JobError
from forgeml.jobs import (
    JobSpec,
    Scheduler,
    cancel,
    get_job,
    job_attempts,
    job_events,
    read_logs,
    retry,
    submit,
    wait,
)


def test_job_environment_follows_the_agreement(jobs_ws) -> None:
    """A job sees FORGEML_HOME/JOB_ID/RUN_ID/CHECKPOINT_DIR/PARAMS, its GPUs, and spec.env."""
    write_script(jobs_ws, "env.py", """
        import json, os
        keys = ["FORGEML_HOME", "FORGEML_JOB_ID", "FORGEML_RUN_ID", "FORGEML_CHECKPOINT_DIR", "FORGEML_PARAMS",
                "CUDA_VISIBLE_DEVICES", "EXTRA"]
        print(json.dumps({k: os.environ.get(k) for k in keys}))
    """)
    job = submit(JobSpec(script="env.py", gpus=2, params={"lr": 0.001}, env={"EXTRA": "yes"}), jobs_ws)
    Scheduler(jobs_ws).run_until_idle(timeout=30)
    done = get_job(job.id, jobs_ws)
    assert done.state == "SUCCEEDED", done.reason
    seen = json.loads(read_logs(job.id, workspace=jobs_ws)[0].strip().splitlines()[-1])
    assert seen["FORGEML_HOME"] == str(jobs_ws.root) and seen["FORGEML_JOB_ID"] == job.id
    assert json.loads(seen["FORGEML_PARAMS"]) == {"lr": 0.001} and seen["EXTRA"] == "yes"
    assert Path(seen["FORGEML_CHECKPOINT_DIR"]).is_dir()
    assert len(seen["CUDA_VISIBLE_DEVICES"].split(",")) == 2
    assert seen["FORGEML_RUN_ID"] == done.run_id


def test_each_job_gets_a_tracking_run_closed_with_its_outcome(jobs_ws) -> None:
    """The run created at submit is SCHEDULED, then FINISHED or FAILED as the job ends."""
    from forgeml.tracking import get_run

    write_script(jobs_ws, "ok.py", "pass\n")
    write_script(jobs_ws, "bad.py", "raise SystemExit(4)\n")
    good = submit(JobSpec(script="ok.py", params={"lr": 0.1}), jobs_ws)
    bad = submit(JobSpec(script="bad.py"), jobs_ws)
    assert get_run(good.run_id).status == "SCHEDULED" and get_run(good.run_id).job_id == good.id
    Scheduler(jobs_ws).run_until_idle(timeout=30)
    assert get_run(good.run_id).status == "FINISHED" and get_run(bad.run_id).status == "FAILED"


def test_state_is_committed_before_the_event_fires(jobs_ws) -> None:
    """on_job_state_changed sees, in a fresh query, the state it announces: PENDING, RUNNING, SUCCEEDED."""
    from forgeml.jobs.queue import jobs_store

    seen = []

    class Listener:
        @hookimpl
        def forgeml_on_job_state_changed(self, job, old_state, new_state, workspace):
            stored = jobs_store(workspace).query("SELECT state FROM jobs WHERE id = ?", (job.id,))[0]["state"]
            seen.append((old_state, new_state, stored))

    listener = Listener()
    jobs_ws.plugins.pm.register(listener, name="test-listener")
    try:
        write_script(jobs_ws, "ok.py", "print('ok')\n")
        submit(JobSpec(script="ok.py"), jobs_ws)
        Scheduler(jobs_ws).run_until_idle(timeout=30)
    finally:
        jobs_ws.plugins.pm.unregister(listener)
    assert seen == [(None, "PENDING", "PENDING"), ("PENDING", "RUNNING", "RUNNING"),
                    ("RUNNING", "SUCCEEDED", "SUCCEEDED")]


def test_exclusive_jobs_never_share_a_gpu(jobs_ws) -> None:
    """Eight 1-GPU jobs on four GPUs: no two running intervals overlap on the same GPU."""
    out = Path(jobs_ws.root) / "intervals"
    out.mkdir()
    write_script(jobs_ws, "hold.py", f"""
        import os, time
        start = time.time(); time.sleep(0.4)
        with open(os.path.join({str(out)!r}, os.environ["FORGEML_JOB_ID"]), "w") as f:
            f.write(f"{{os.environ['CUDA_VISIBLE_DEVICES']}} {{start}} {{time.time()}}")
    """)
    ids = [submit(JobSpec(script="hold.py", gpus=1), jobs_ws).id for _ in range(8)]
    Scheduler(jobs_ws).run_until_idle(timeout=60)
    assert all(get_job(i, jobs_ws).state == "SUCCEEDED" for i in ids)
    spans = [(g, float(a), float(b)) for g, a, b in (p.read_text().split() for p in out.iterdir())]
    assert len(spans) == 8 and {g for g, _, _ in spans} <= {"0", "1", "2", "3"}
    for i, (g1, a1, b1) in enumerate(spans):
        for g2, a2, b2 in spans[i + 1:]:
            assert g1 != g2 or b1 <= a2 or b2 <= a1, f"GPU {g1} ran two jobs at once"


def test_cancel_pending_and_running_with_sigkill_after_grace(jobs_ws) -> None:
    """Cancel: a pending job at once; a running one that ignores SIGTERM is killed after the grace period."""
    write_script(jobs_ws, "stubborn.py", """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("started", flush=True)
        time.sleep(60)
    """)
    running = submit(JobSpec(script="stubborn.py", gpus=4), jobs_ws)
    waiting = submit(JobSpec(script="stubborn.py", gpus=4), jobs_ws)
    scheduler = Scheduler(jobs_ws).start_in_thread()
    try:
        _until(lambda: "started" in read_logs(running.id, workspace=jobs_ws)[0])
        assert cancel(waiting.id, jobs_ws).state == "CANCELLED"
        asked = time.monotonic()
        cancel(running.id, jobs_ws)
        done = wait(running.id, timeout=20, workspace=jobs_ws)
        elapsed = time.monotonic() - asked
    finally:
        scheduler.stop()
    assert done.state == "CANCELLED" and done.exit_code == -9
    assert elapsed >= 0.9  # survived SIGTERM, so only SIGKILL after the 1 s grace ended it
    assert cancel(done.id, jobs_ws).state == "CANCELLED"  # cancelling twice is harmless


def test_cancelling_a_finished_job_is_an_error(jobs_ws) -> None:
    """A job that already SUCCEEDED cannot be cancelled; the error says so."""
    write_script(jobs_ws, "ok.py", "pass\n")
    job = submit(JobSpec(script="ok.py"), jobs_ws)
    Scheduler(jobs_ws).run_until_idle(timeout=30)
    with pytest.raises(JobError, match="already SUCCEEDED; nothing to cancel"):
        cancel(job.id, jobs_ws)


def test_timeout_stops_the_job_and_fails_it(jobs_ws) -> None:
    """A job over its timeout gets SIGTERM and ends FAILED with a reason naming the timeout."""
    write_script(jobs_ws, "slow.py", "import time\ntime.sleep(60)\n")
    job = submit(JobSpec(script="slow.py", timeout_s=0.5, retries=3), jobs_ws)
    Scheduler(jobs_ws).run_until_idle(timeout=30)
    done = get_job(job.id, jobs_ws)
    assert done.state == "FAILED" and "timed out after 0.5s" in done.reason and done.attempts == 1


def test_transient_failures_retry_with_exponential_backoff(jobs_ws) -> None:
    """CUDA OOM in the log is transient: retried after 0.3 s, then 0.6 s, and the third attempt succeeds."""
    write_script(jobs_ws, "flaky.py", """
        import os, sys
        if int(os.environ["FORGEML_ATTEMPT"]) < 3:
            print("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB")
            sys.exit(1)
        print("trained")
    """)
    job = submit(JobSpec(script="flaky.py", retries=2), jobs_ws)
    Scheduler(jobs_ws).run_until_idle(timeout=30)
    done = get_job(job.id, jobs_ws)
    assert done.state == "SUCCEEDED" and done.attempts == 3 and done.failures == 2
    attempts = job_attempts(job.id, jobs_ws)
    gaps = [b["started_at"] - a["finished_at"] for a, b in zip(attempts, attempts[1:])]
    assert gaps[0] >= 0.3 - 0.05 and gaps[1] >= 0.6 - 0.05
    assert any("retry 1 of 2 in 0.3s" in e["reason"] for e in job_events(job.id, jobs_ws))


def test_permanent_failures_fail_at_once_and_plugins_classify_first(jobs_ws) -> None:
    """Exit 1 with no marker fails without retry; a classify_failure plugin can turn exit 3 transient."""
    write_script(jobs_ws, "bad.py", "import os, sys\nsys.exit(1 if os.environ.get('CODE') == '1' else 3)\n")

    class Classifier:
        @hookimpl
        def forgeml_classify_failure(self, job, exit_code, log_tail):
            return "transient" if exit_code == 3 else None

    plain = submit(JobSpec(script="bad.py", retries=2, env={"CODE": "1"}), jobs_ws)
    classified = submit(JobSpec(script="bad.py", retries=1), jobs_ws)
    jobs_ws.plugins.pm.register(Classifier(), name="test-classifier")
    try:
        Scheduler(jobs_ws).run_until_idle(timeout=30)
    finally:
        jobs_ws.plugins.pm.unregister(name="test-classifier")
    first, second = get_job(plain.id, jobs_ws), get_job(classified.id, jobs_ws)
    assert (first.state, first.attempts, first.exit_code) == ("FAILED", 1, 1) and "permanent" in first.reason
    assert (second.state, second.attempts) == ("FAILED", 2) and "no retries left" in second.reason
    again = retry(first.id, jobs_ws)
    assert again.state == "PENDING" and again.failures == 0


def test_only_one_scheduler_per_workspace(jobs_ws) -> None:
    """A second scheduler on the same workspace is refused while the first holds the lock."""
    first = Scheduler(jobs_ws).start_in_thread()
    try:
        with pytest.raises(JobError, match="already running"):
            Scheduler(jobs_ws).open()
    finally:
        first.stop()
    second = Scheduler(jobs_ws)
    second.open()
    second.close()


def _until(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)
