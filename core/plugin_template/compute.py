"""Templates for executors, placement policies and promotion gates."""

from __future__ import annotations

COMPUTE: dict[str, dict[str, str]] = {
    "executor": {
        "suite": "ExecutorSuite",
        "description": "Runs jobs on this machine at a lower CPU priority (nice), so interactive work stays responsive.",
        "selection": "    [compute.targets.background]\n    plugin = \"{name}\"\n    niceness = 10",
        "imports": "import dataclasses\nimport shutil",
        "plugin": '''from forgeml.contracts import LaunchRequest
from forgeml.plugins.local.executor import LocalExecutor
from forgeml.plugins.local.settings import LocalTargetSettings


@dataclass
class Settings(LocalTargetSettings):
    """Settings of the {name} executor: the local executor's, plus the CPU priority of every attempt."""

    niceness: int = setting(10, "How much lower than normal the attempts' CPU priority is (0-19).")


class {cls}(LocalExecutor):
    """The local executor with every attempt started under ``nice``.

    Start here for a target that launches processes differently (a container runtime, a sandbox):
    change ``launch``, and ``pytest`` runs forgeml.testing.ExecutorSuite to say which rule breaks.
    """

    def __init__(self, settings: Settings | None = None, workspace: Any = None):
        super().__init__(settings or Settings(), workspace)
        self.name = "{name}"

    def launch(self, request: LaunchRequest) -> str:
        """Start the attempt through ``nice -n NICENESS`` (which runs it in the same process)."""
        nice = shutil.which("nice")
        if nice is None:
            return super().launch(request)
        argv = [nice, "-n", str(self.settings.niceness), *request.argv]
        return super().launch(dataclasses.replace(request, argv=argv))


@hookimpl
def forgeml_register_executors(register):
    """Offer the {name} executor."""
    register("{name}", {cls}, settings=Settings, description="local processes at a lower CPU priority")
''',
        "test": '''import functools
import os
import sys
import time

import pytest

from forgeml.testing import ExecutorSuite
from {package}.plugin import {cls}, Settings


class Test{cls}(ExecutorSuite):
    @pytest.fixture
    def open_executor(self):
        return functools.partial({cls}, Settings(niceness=5))


def test_attempts_run_at_the_lower_priority(tmp_path):
    from forgeml.contracts import LaunchRequest

    executor = {cls}(Settings(niceness=5))
    log = tmp_path / "attempt.log"
    code = "import os; print('niceness', os.nice(0), flush=True)"
    handle = executor.launch(LaunchRequest("nice-1", 1, [sys.executable, "-c", code], dict(os.environ),
                                           str(tmp_path), str(log)))
    deadline = time.monotonic() + 60
    while executor.poll(handle).state == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"niceness {{min(19, os.nice(0) + 5)}}" in executor.logs(handle)[0]
''',
    },
    "placement_policy": {
        "suite": "PlacementPolicySuite",
        "description": "The default packing, starting at most a set number of jobs per scheduler cycle.",
        "selection": "    [scheduler.policy]\n    plugin = \"{name}\"\n    max_starts_per_cycle = 2",
        "imports": "from collections.abc import Sequence",
        "plugin": '''from forgeml.jobs.placement import GpuSlot, JobRequest, Placement, Resources
from forgeml.plugins.local.placement import DefaultPlacementPolicy


@dataclass
class Settings:
    """Settings of the {name} placement policy."""

    max_starts_per_cycle: int = setting(2, "Most jobs started in one scheduler cycle (0: no limit).")
    backfill: bool = setting(True, "Let small jobs start ahead of a big one that cannot start yet.")


class {cls}(DefaultPlacementPolicy):
    """Priority, FIFO and best-fit packing, but a limited number of starts per cycle (no preemption).

    Start here for your own placement: ``place`` must return placements the kernel accepts, and
    ``pytest`` runs forgeml.testing.PlacementPolicySuite, which checks each plan as the scheduler does.
    """

    def __init__(self, settings: Settings | None = None, workspace: Any = None):
        self.settings = settings or Settings()
        super().__init__(backfill=self.settings.backfill, preemption=False)

    def place(self, pending: Sequence[JobRequest], gpus: Sequence[GpuSlot], resources: Resources) -> list[Placement]:
        """Return the default plan, cut to the first ``max_starts_per_cycle`` placements."""
        plan = super().place(pending, gpus, resources)
        limit = self.settings.max_starts_per_cycle
        return plan[:limit] if limit > 0 else plan


@hookimpl
def forgeml_register_placement_policies(register):
    """Offer the {name} placement policy."""
    register("{name}", {cls}, settings=Settings, description="default packing, a few starts per cycle")
''',
        "test": '''import pytest

from forgeml.testing import PlacementPolicySuite
from {package}.plugin import {cls}, Settings


class Test{cls}(PlacementPolicySuite):
    @pytest.fixture
    def policy(self):
        return {cls}(Settings(max_starts_per_cycle=0))


class Test{cls}Limited(PlacementPolicySuite):
    @pytest.fixture
    def policy(self):
        return {cls}(Settings(max_starts_per_cycle=1))
''',
    },
    "gate": {
        "suite": "PromotionGateSuite",
        "description": "A promotion gate: the new version's metric must beat production's by a margin.",
        "selection": "    [registry.models.churn]\n    gates = [{{ plugin = \"{name}\", metric = \"auc\", min_gain = 0.01 }}]",
        "imports": "",
        "plugin": '''from forgeml.contracts import GateResult


@dataclass
class Settings:
    """Settings of the {name} gate."""

    metric: str = setting("auc", "Metric recorded with each model version.")
    min_gain: float = setting(0.0, "How much higher than production's the new version's metric must be.")
    higher_is_better: bool = setting(True, "False for errors and losses, where lower wins.")


class {cls}:
    """Passes a version whose metric beats production's by at least ``min_gain`` (any version when none is)."""

    name = "{name}"

    def __init__(self, settings: Settings | None = None, workspace: Any = None):
        self.settings = settings or Settings()

    def check(self, context: Any) -> GateResult:
        """Compare the version's metric with production's and say why it passes or not."""
        s = self.settings
        new = context.model_version.metrics.get(s.metric)
        if new is None:
            return GateResult(self.name, False, f"version has no {{s.metric!r}} metric", {{"metric": s.metric}})
        production = context.production
        old = production.metrics.get(s.metric) if production is not None else None
        if old is None:
            return GateResult(self.name, True, "no production version to compare with", {{"new": new}})
        gain = (new - old) if s.higher_is_better else (old - new)
        passed = gain >= s.min_gain
        verdict = "beats" if passed else "does not beat"
        return GateResult(self.name, passed, f"{{s.metric}} {{new:g}} {{verdict}} production's {{old:g}} "
                          f"by {{s.min_gain:g}} (gain {{gain:g}})", {{"new": new, "old": old, "gain": gain}})


@hookimpl
def forgeml_register_gates(register):
    """Offer the {name} gate."""
    register("{name}", {cls}, settings=Settings, description="beat production's metric by a margin")
''',
        "test": '''from types import SimpleNamespace

import pytest

from forgeml.testing import PromotionGateSuite
from {package}.plugin import {cls}, Settings


def context(auc, production_auc):
    production = SimpleNamespace(metrics={{"auc": production_auc}})
    return SimpleNamespace(model_version=SimpleNamespace(metrics={{"auc": auc}}), production=production,
                           stage="PRODUCTION", actor="tester", reason="")


class Test{cls}(PromotionGateSuite):
    @pytest.fixture
    def cases(self):
        return {cls}(Settings(metric="auc", min_gain=0.01)), context(0.90, 0.85), context(0.855, 0.85)
''',
    },
}
