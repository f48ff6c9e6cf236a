"""Running the scheduler as a command: in the foreground with signal handling, once, or detached."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

from forgeml.errors import JobError

from .wake import SchedulerLock, jobs_dir


def run_scheduler(once: bool = False, until_idle: bool = False) -> None:
    """Run the current workspace's scheduler: one cycle, until idle, or until SIGTERM/SIGINT."""
    from forgeml.workspace import current

    from .scheduler import Scheduler

    ws = current()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    scheduler = Scheduler(ws)
    if once:
        scheduler.open()
        try:
            scheduler.cycle()
        finally:
            scheduler.close()
        return
    if until_idle:
        scheduler.run_until_idle()
        return

    def stop(signum: int, frame: object) -> None:
        scheduler._stop.set()
        if scheduler._waker is not None:
            scheduler._waker.wake()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.open()
    logging.getLogger("forgeml.jobs").info("scheduler %d serving %s", os.getpid(), ws.root)
    scheduler.serve_forever()


def detach_scheduler(start_timeout_s: float = 15.0) -> int:
    """Start `forgeml scheduler` in the background for the current workspace; return its pid."""
    from forgeml.workspace import current

    ws = current()
    lock = SchedulerLock(ws)
    holder = lock.holder()
    if holder is not None:
        raise JobError(f"a scheduler (pid {holder}) is already running for this workspace")
    log_path = jobs_dir(ws) / "scheduler.log"
    env = {**os.environ, "FORGEML_HOME": str(ws.root)}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "forgeml", "scheduler"], cwd=ws.root, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + start_timeout_s
    while time.monotonic() < deadline:
        if lock.holder() == proc.pid:
            return proc.pid
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise JobError(f"the scheduler exited at start (code {proc.returncode}): {tail[0]}")
        time.sleep(0.05)
    return proc.pid


START_HINT = ("start one with `forgeml scheduler` in another terminal or `forgeml scheduler --detach`, "
              "or set autostart = true under [scheduler] in plugins.toml")


def scheduler_pid(ws: object = None) -> int | None:
    """Return the pid of the scheduler serving the workspace, or None when none runs."""
    from forgeml.workspace import current

    return SchedulerLock(ws or current()).holder()


def after_submit(job: object, ws: object = None) -> str | None:
    """What a person who just submitted should know about the scheduler; start one when configured to.

    Returns None when a scheduler serves the workspace, else one line: the one started in the
    background ([scheduler] autostart), or that the job waits and how to start one.
    """
    from forgeml.workspace import current

    ws = ws or current()
    if scheduler_pid(ws) is not None:
        return None
    if ws.config.section("scheduler").autostart:
        pid = detach_scheduler()
        return f"Started a scheduler for this workspace in the background (pid {pid}); log: .forgeml/jobs/scheduler.log"
    return f"No scheduler is running for this workspace, so job {job.id} waits in the queue: {START_HINT}."


def pending_notice(job: object, ws: object = None) -> str | None:
    """One line saying a job is still pending and why (no scheduler, or what it waits for); None otherwise."""
    if job.state != "PENDING":
        return None
    why = f" ({job.reason})" if job.reason else ""
    if scheduler_pid(ws) is None:
        return f"job {job.id} is pending{why} and no scheduler is running for this workspace: {START_HINT}"
    return f"job {job.id} is pending{why}: it has no output until the scheduler starts it"
