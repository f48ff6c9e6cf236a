"""The scheduler does not trust its placement policy, and does not keep a job that can never run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jobs_support import FAST_CONFIG, kill_leftovers, open_workspace

GREEDY_POLICY = '''
from forgeml import hookimpl
from forgeml.jobs.placement import Placement


class Greedy:
    """Puts every pending job on GPU 0, exclusive or not."""

    def place(self, pending, gpus, resources):
        return [Placement(r.job_id, (0,) * r.gpus) for r in pending]


@hookimpl
def forgeml_register_placement_policies(register):
    register("greedy", lambda settings, workspace: Greedy())
'''


@pytest.fixture
def greedy_ws(workspace: Any) -> Any:
    """A workspace whose placement policy comes from a local plugin that shares exclusive GPUs."""
    root = Path(workspace.root)
    (root / "greedy_policy.py").write_text(GREEDY_POLICY)
    ws = open_workspace(root, '[plugins]\nlocal = ["greedy_policy.py"]\n\n[scheduler.policy]\nplugin = "greedy"\n')
    yield ws
    kill_leftovers(ws)
    ws.close()


def test_a_plan_sharing_an_exclusive_gpu_is_refused_naming_the_policy(greedy_ws: Any) -> None:
    """Two exclusive jobs on GPU 0: the scheduler refuses the plan, names the policy, and starts nothing."""
    from forgeml.errors import PluginError
    from forgeml.jobs import JobSpec, Scheduler, list_jobs, submit

    for _ in range(2):
        submit(JobSpec(command=["true"], gpus=1), workspace=greedy_ws)
    with pytest.raises(PluginError, match=r"placement policy 'greedy' \(plugin 'greedy_policy'\).*GPU 0, which an "
                                          r"exclusive job already holds"):
        Scheduler(greedy_ws).run_until_idle(timeout=10)
    assert {j.state for j in list_jobs(workspace=greedy_ws)} == {"PENDING"}


def test_a_job_no_placement_can_fit_is_failed_with_the_reason(workspace: Any) -> None:
    """A job accepted for 4 GPUs fails, saying why, once the machine has only 2 (not PENDING forever)."""
    from forgeml.jobs import JobSpec, Scheduler, get_job, submit
    from forgeml.workspace import Workspace

    root = Path(workspace.root)
    ws = open_workspace(root)
    job = submit(JobSpec(command=["true"], gpus=4), workspace=ws)
    ws.close()
    (root / "plugins.toml").write_text(FAST_CONFIG.replace("count = 4", "count = 2"))
    ws = Workspace(root)
    try:
        Scheduler(ws).run_until_idle(timeout=10)
        done = get_job(job.id, ws)
        assert done.state == "FAILED", done
        assert "cannot ever run" in done.reason and "asks for 4 GPU(s)" in done.reason and "has 2" in done.reason
    finally:
        ws.close()


BLINKING_INVENTORY = '''
from forgeml import hookimpl
from forgeml.contracts import GpuDevice

class Blinking:
    """Reports no GPUs for its first few calls (a driver reset), then two idle GPUs."""

    def __init__(self, dark):
        self.dark = dark
        self.calls = 0

    def devices(self):
        self.calls += 1
        if self.calls <= self.dark:
            return []
        return [GpuDevice(index=i, name="H100", memory_total_mb=80000, memory_free_mb=80000, uuid=f"GPU-{i}")
                for i in range(2)]


@hookimpl
def forgeml_register_gpu_inventories(register):
    register("blinking", lambda settings, workspace: Blinking(dark=3))
'''


@pytest.mark.parametrize(("unfit_cycles", "state"), [(8, "SUCCEEDED"), (2, "FAILED")])
def test_an_inventory_that_briefly_sees_no_gpus_fails_a_gpu_job_only_after_unfit_cycles(
        workspace: Any, unfit_cycles: int, state: str) -> None:
    """Three dark inventory reads fail a pending GPU job only when ``unfit_cycles`` is below three."""
    from forgeml.jobs import JobSpec, Scheduler, get_job, submit
    from forgeml.workspace import Workspace, set_current

    root = Path(workspace.root)
    ws = open_workspace(root)
    job = submit(JobSpec(command=["true"], gpus=1), workspace=ws)
    ws.close()
    (root / "blinking_inventory.py").write_text(BLINKING_INVENTORY)
    config = FAST_CONFIG.replace('plugin = "declared"\ncount = 4', 'plugin = "blinking"')
    config = config.replace("[scheduler]\n", f"[scheduler]\nunfit_cycles = {unfit_cycles}\n")
    (root / "plugins.toml").write_text('[plugins]\nlocal = ["blinking_inventory.py"]\n' + config)
    ws = Workspace(root)
    set_current(ws)
    try:
        Scheduler(ws).run_until_idle(timeout=30)
        done = get_job(job.id, ws)
        assert done.state == state, done
        if state == "FAILED":
            assert "cannot ever run" in done.reason and "asks for 1 GPU(s)" in done.reason
    finally:
        kill_leftovers(ws)
        ws.close()
