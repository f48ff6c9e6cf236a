"""A scheduler killed between starting a job's process and recording it: the restart adopts the orphan.

The first scheduler runs in a fresh interpreter whose local executor exits the process right after
``Popen`` returns (before the handle is written anywhere), which is the narrowest window there is.
GPUs are the ``declared`` inventory with ``host_wide = true``; schedulers and jobs are real processes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from test_jobs_host import _env, _finish, _overlaps, _scheduler, _submit, _workspace

DIES_AFTER_POPEN = """
import os, subprocess, sys, types
import forgeml.plugins.local.executor as local
from forgeml.jobs import Scheduler
from forgeml.workspace import Workspace

class Dying(subprocess.Popen):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        os._exit(9)  # the job runs; nothing recorded its process

local.subprocess = types.SimpleNamespace(Popen=Dying, DEVNULL=subprocess.DEVNULL, STDOUT=subprocess.STDOUT)
Scheduler(Workspace(sys.argv[1])).run_until_idle(timeout=60)
"""


def test_a_job_started_by_a_scheduler_killed_before_recording_it_is_adopted_not_double_booked(tmp_path: Path) -> None:
    """The restarted scheduler finds the orphan by its log path: one attempt, its GPU never given to another job."""
    host_dir = tmp_path / "host"
    record = tmp_path / "record.jsonl"
    a = _workspace(tmp_path / "a", host_dir)
    b = _workspace(tmp_path / "b", host_dir)
    (a / "plugins.toml").write_text((a / "plugins.toml").read_text().replace("count = 2", "count = 1"))
    (b / "plugins.toml").write_text((b / "plugins.toml").read_text().replace("count = 2", "count = 1"))
    _submit(a, 3.0, record, 1, _env(a, host_dir))
    _submit(b, 0.5, record, 1, _env(b, host_dir))
    dying = subprocess.run([sys.executable, "-c", DIES_AFTER_POPEN, str(a)], env=_env(a, host_dir), cwd=a,
                           capture_output=True, text=True, timeout=120)
    assert dying.returncode == 9, dying.stderr
    [log] = list(a.rglob("attempt-1.log"))
    assert not Path(f"{log}.handle").exists()  # nothing recorded the process: the window this test is about
    sa = _scheduler(a, _env(a, host_dir))
    sb = _scheduler(b, _env(b, host_dir))
    _finish(sa, sb)
    deadline = time.monotonic() + 30
    while len(record.read_text().splitlines()) < 2:
        assert time.monotonic() < deadline, record.read_text()
        time.sleep(0.1)
    assert not _overlaps(record), _overlaps(record)
    from forgeml.jobs import list_jobs
    from forgeml.workspace import Workspace

    ws = Workspace(a)
    try:
        assert [(j.state, j.attempts) for j in list_jobs(workspace=ws)] == [("SUCCEEDED", 1)]
    finally:
        ws.close()
