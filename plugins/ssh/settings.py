"""Settings of an ssh compute target ([compute.targets.NAME] with plugin = "ssh")."""

from __future__ import annotations

from dataclasses import dataclass

from forgeml.config import setting
from forgeml.plugins.remote.settings import SshConnectionSettings


@dataclass
class SshTargetSettings(SshConnectionSettings):
    """An SSH target: one or more hosts that run jobs detached under the login user's shell."""

    hosts: list[str] = setting(["localhost"], "Hosts as [user@]host[:port]; a job goes to the first with the GPUs it needs.")
    login_shell: bool = setting(True, "Start jobs through the user's login shell ($SHELL -l) so its profile sets PATH.")
