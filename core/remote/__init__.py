"""Shared pieces of the remote compute plugins: code snapshots, content-hash sync, state mapping and bring-back.

The executors live in ``ssh_executor``, ``slurm_executor`` and ``k8s_executor``; the plugins in
``forgeml.plugins.{ssh,slurm,kubernetes}`` bind them to ``[compute.targets.NAME]`` tables. Names here
load lazily so that loading the plugins (in every forgeml process) stays cheap.
"""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".snapshot": ["CodeSnapshot", "take_snapshot"],
    ".targets": ["TargetInfo", "check_target", "list_targets"],
})
