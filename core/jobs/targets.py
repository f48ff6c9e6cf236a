"""Compute targets as people see them: list what plugins.toml declares and check that each one works."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgeml.contracts import HealthCheck
from forgeml.errors import ForgeError


@dataclass(frozen=True)
class TargetInfo:
    """One compute target: its name, executor plugin and where it points."""

    name: str
    plugin: str
    where: str


def list_targets(workspace: Any) -> list[TargetInfo]:
    """Return every compute target of the workspace (``local`` always exists)."""
    out = []
    for name, (provider, _settings) in sorted(workspace.config.targets().items()):
        try:
            where = workspace.executor(name).describe()
        except ForgeError as e:
            where = f"cannot open: {e}"
        out.append(TargetInfo(name, provider.name, where))
    return out


def check_target(workspace: Any, name: str) -> list[HealthCheck]:
    """Run a target's checks (connectivity, GPUs, queue); a failure to even start is one failed check."""
    executor = workspace.executor(name)
    try:
        return list(executor.check())
    except ForgeError as e:
        return [HealthCheck(f"target {name}", False, str(e))]
