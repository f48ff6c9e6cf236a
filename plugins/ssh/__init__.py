"""Compute on SSH hosts through paramiko: content-hash code sync, detached jobs, reattach after a drop."""

from __future__ import annotations

from typing import Any

from forgeml import hookimpl
from forgeml.plugins.ssh.settings import SshTargetSettings


def _ssh(settings: SshTargetSettings, workspace: Any) -> Any:
    from forgeml.plugins.ssh.executor import SshExecutor

    return SshExecutor(settings, workspace)


@hookimpl
def forgeml_register_executors(register):
    """Offer the ssh executor."""
    register("ssh", _ssh, settings=SshTargetSettings, description="jobs on SSH hosts (paramiko, SFTP sync)")
