"""Shared pieces of the remote compute plugins: code snapshots, content-hash sync, state mapping and bring-back.

The executors live in ``ssh_executor``, ``slurm_executor`` and ``k8s_executor``; the plugins in
``forgeml.plugins.{ssh,slurm,kubernetes}`` bind them to ``[compute.targets.NAME]`` tables.
"""

from forgeml.remote.snapshot import CodeSnapshot, take_snapshot
from forgeml.remote.targets import TargetInfo, check_target, list_targets

__all__ = ["CodeSnapshot", "TargetInfo", "check_target", "list_targets", "take_snapshot"]
