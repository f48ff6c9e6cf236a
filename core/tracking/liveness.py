"""Runs whose process is gone: a run left RUNNING by a process killed with SIGKILL is marked KILLED.

A run records the host and pid of the process that started it. On that host, a RUNNING run whose
process no longer exists (or whose pid now belongs to a process started after the run) ended without
saying so, as Slurm's accounting would notice; ``reap_orphaned_runs`` marks it KILLED. Runs owned
by a job are left to the scheduler, which knows how the job ended.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from forgeml.tracking.records import KILLED

# a pid whose process started this long after the run is a reused pid, not the run's process
_PID_REUSE_SLACK_S = 2.0


def owner() -> dict[str, Any]:
    """Return the context entries that let a later pass tell whether this process is still alive."""
    import os

    return {"host": socket.gethostname(), "pid": os.getpid()}


def process_alive(pid: int, started_by: float) -> bool:
    """Return whether pid is a live process that started no later than started_by (plus slack)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return proc.create_time() <= started_by + _PID_REUSE_SLACK_S
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def orphaned_runs(workspace: Any = None) -> list[str]:
    """Return the ids of RUNNING runs started on this host whose process is gone (jobs' runs excluded)."""
    from forgeml.tracking.api import _store

    store = _store(workspace)
    host = socket.gethostname()
    found = []
    for row in store.running_without_job():
        try:
            context = json.loads(row["context"] or "{}")
        except ValueError:
            continue
        pid = context.get("pid")
        if context.get("host") != host or not isinstance(pid, int):
            continue
        if not process_alive(pid, row["start_time"]):
            found.append(row["id"])
    return found


def reap_orphaned_runs(workspace: Any = None) -> list[str]:
    """Mark every orphaned run KILLED (with its end time now) and return their ids."""
    from forgeml.tracking.api import _store

    store = _store(workspace)
    reaped = []
    for run_id in orphaned_runs(workspace):
        # only a run still RUNNING changes: its process may have ended it properly meanwhile
        if store.end_if_running(run_id, KILLED, time.time()):
            reaped.append(run_id)
    return reaped
