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


def _where(plugin: str, settings: Any) -> str:
    if settings is None or plugin == "local":
        return "this machine"
    if plugin == "ssh":
        return ", ".join(settings.hosts)
    if plugin == "slurm":
        part = f" partition {settings.partition}" if settings.partition else ""
        return (f"login node {settings.login_host}" if settings.login_host else "sbatch on this machine") + part
    if plugin == "kubernetes":
        return f"namespace {settings.namespace}, image {settings.image or '(none)'}"
    return ""


def list_targets(workspace: Any) -> list[TargetInfo]:
    """Return every compute target of the workspace (``local`` always exists)."""
    return [TargetInfo(name, provider.name, _where(provider.name, settings))
            for name, (provider, settings) in sorted(workspace.config.targets().items())]


def check_target(workspace: Any, name: str) -> list[HealthCheck]:
    """Run a target's checks (connectivity, GPUs, queue); a failure to even start is one failed check."""
    executor = workspace.executor(name)
    try:
        return list(executor.check())
    except ForgeError as e:
        return [HealthCheck(f"target {name}", False, str(e))]
