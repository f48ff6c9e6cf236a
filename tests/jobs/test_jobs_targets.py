"""Jobs on other compute targets, CPU limits on the local one, and the detached scheduler.

The other target is a throwaway executor plugin that runs attempts as local processes (a stand-in
for SSH/Slurm/Kubernetes, which are other plugins' work); GPUs are the ``declared`` inventory.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

from jobs_support import FAST_CONFIG, write_script

from forgeml import hookimpl
from forgeml.contracts import Executor
from forgeml.jobs import JobSpec, Scheduler, get_job, read_logs, submit, wait


@dataclass
class RemoteSettings:
    """Settings of the stand-in remote executor."""

    host: str = "gpu-box"


class RemoteExecutor(Executor):
    """Records every call, then delegates to the local executor (the 'remote' machine is this one)."""

    name = "remote"

    def __init__(self, settings, workspace):
        from forgeml.plugins.local.executor import LocalExecutor, LocalTargetSettings

        self.local = LocalExecutor(LocalTargetSettings(), workspace)
        self.launched = []

    def launch(self, request):
        self.launched.append(request)
        # the 'remote' machine runs the attempt in its own login environment, as ssh or Slurm would
        return self.local.launch(replace(request, env={**os.environ, **request.env}))

    def poll(self, handle):
        return self.local.poll(handle)

    def cancel(self, handle, grace_s=10.0):
        self.local.cancel(handle, grace_s)

    def logs(self, handle, offset=0):
        return self.local.logs(handle, offset)

    def check(self):
        return []


PLUGIN = SimpleNamespace(forgeml_register_executors=hookimpl(
    lambda register: register("remote", RemoteExecutor, settings=RemoteSettings)))


def test_jobs_for_another_target_go_to_its_executor_without_local_placement(workspace) -> None:
    """A job for target "box" is launched and polled by that target's executor, with no local GPUs or PATH."""
    from forgeml.plugin_manager import make_plugin_manager
    from forgeml.workspace import Workspace, set_current

    root = Path(workspace.root)
    (root / "plugins.toml").write_text(FAST_CONFIG + '\n[compute.targets.box]\nplugin = "remote"\nhost = "b1"\n')
    ws = Workspace(root, host=make_plugin_manager(extra=[("remote-test", PLUGIN)]))
    set_current(ws)
    try:
        write_script(ws, "t.py", "import os\nprint('visible', os.environ.get('CUDA_VISIBLE_DEVICES'))\n")
        job = submit(JobSpec(script="t.py", gpus=8, target="box"), ws)  # more GPUs than local has: fine there
        Scheduler(ws).run_until_idle(timeout=30)
        done = get_job(job.id, ws)
        assert done.state == "SUCCEEDED", done.reason
        request = ws.executor("box").launched[0]
        assert request.gpus == [] and request.env["FORGEML_JOB_ID"] == job.id
        assert "CUDA_VISIBLE_DEVICES" not in request.env and "PATH" not in request.env  # the target decides
        assert request.argv[0] == "python"
        assert "visible None" in read_logs(job.id, workspace=ws)[0]
    finally:
        ws.close()


def test_cpu_jobs_are_pinned_and_memory_capped(jobs_ws) -> None:
    """A CPU-only job with cpus = 1 and memory = 300Mi runs on one core under a 300 MiB address-space cap."""
    write_script(jobs_ws, "limits.py", """
        import json, os, resource
        print(json.dumps({"cores": len(os.sched_getaffinity(0)), "as": resource.getrlimit(resource.RLIMIT_AS)[0],
                          "omp": os.environ.get("OMP_NUM_THREADS")}))
    """)
    job = submit(JobSpec(script="limits.py", cpus=1, memory_mb=300), jobs_ws)
    Scheduler(jobs_ws).run_until_idle(timeout=30)
    assert get_job(job.id, jobs_ws).state == "SUCCEEDED"
    seen = json.loads(read_logs(job.id, workspace=jobs_ws)[0].strip().splitlines()[-1])
    assert seen == {"cores": 1, "as": 300 * 2**20, "omp": "1"}


def test_detached_scheduler_runs_jobs_and_stops_on_sigterm(jobs_ws) -> None:
    """`forgeml scheduler --detach` starts a background scheduler holding the lock; SIGTERM stops it."""
    from forgeml.jobs.daemon import detach_scheduler
    from forgeml.jobs.wake import SchedulerLock

    write_script(jobs_ws, "ok.py", "print('ran')\n")
    pid = detach_scheduler()
    try:
        assert SchedulerLock(jobs_ws).holder() == pid
        job = submit(JobSpec(script="ok.py"), jobs_ws)
        assert wait(job.id, timeout=30, workspace=jobs_ws).state == "SUCCEEDED"
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while SchedulerLock(jobs_ws).holder() is not None:
        assert time.monotonic() < deadline, "the detached scheduler did not stop"
        time.sleep(0.05)
