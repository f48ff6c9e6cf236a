"""Local compute: the workstation executor and the default placement policy."""

from __future__ import annotations

from typing import Any

from forgeml import hookimpl
from forgeml.plugins.local.settings import DefaultPolicySettings, LocalTargetSettings


def _executor(settings: LocalTargetSettings, workspace: Any) -> Any:
    from forgeml.plugins.local.executor import LocalExecutor

    return LocalExecutor(settings, workspace)


def _policy(settings: DefaultPolicySettings, workspace: Any) -> Any:
    from forgeml.plugins.local.placement import DefaultPlacementPolicy

    return DefaultPlacementPolicy(backfill=settings.backfill, reserve_after_s=settings.reserve_after_s,
                                  preemption=settings.preemption)


@hookimpl
def forgeml_register_executors(register):
    """Offer the local executor."""
    register("local", _executor, settings=LocalTargetSettings,
             description="process groups on this workstation")


@hookimpl
def forgeml_register_placement_policies(register):
    """Offer the default placement policy."""
    register("default", _policy, settings=DefaultPolicySettings,
             description="priority, FIFO, best-fit GPU packing, backfill, preemption")
