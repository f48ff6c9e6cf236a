"""Shared pieces of the remote compute plugins: code snapshots, content-hash sync, state mapping and bring-back.

The executors live in ``ssh_executor``, ``slurm_executor`` and ``k8s_executor``; the plugins in
``forgeml.plugins.{ssh,slurm,kubernetes}`` bind them to ``[compute.targets.NAME]`` tables. Names here
load lazily so that loading the plugins (in every forgeml process) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "CodeSnapshot": "forgeml.remote.snapshot",
    "take_snapshot": "forgeml.remote.snapshot",
    "TargetInfo": "forgeml.remote.targets",
    "check_target": "forgeml.remote.targets",
    "list_targets": "forgeml.remote.targets",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'forgeml.remote' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
