"""Health checks behind `forgeml doctor`."""

from __future__ import annotations

import platform
import sys

from forgeml.contracts import HealthCheck
from forgeml.errors import ForgeError


def _torch_check() -> list[HealthCheck]:
    try:
        import torch
    except ImportError as e:
        return [HealthCheck("torch", False, f"not importable: {e}")]
    cuda = torch.cuda.is_available()
    detail = f"{torch.__version__}; CUDA {'available: ' + str(torch.version.cuda) if cuda else 'not available'}"
    return [HealthCheck("torch", True, detail)]


def gpu_checks(inventory: object | None = None) -> list[HealthCheck]:
    """Report each GPU NVML sees, or that the machine runs in CPU mode."""
    if inventory is None:
        from forgeml.plugin_manager import make_plugin_manager

        # core asks the plugin manager rather than importing a plugin module
        host = make_plugin_manager(report=lambda msg: None)
        inventory = host.provider("gpu_inventories", "nvml").factory(None, None)
    devices = inventory.devices()  # type: ignore[attr-defined]
    if not devices:
        return [HealthCheck("gpus", True, "no NVIDIA GPU found, CPU mode")]
    return [
        HealthCheck(f"gpu {d.index}", True,
                    f"{d.name}, {d.memory_free_mb}/{d.memory_total_mb} MiB free, {d.utilization_pct:.0f}% busy")
        for d in devices
    ]


def run_checks() -> list[HealthCheck]:
    """Run every check: Python, torch/CUDA, GPUs, workspace, stores, plugins."""
    checks = [HealthCheck("python", sys.version_info >= (3, 11), f"{platform.python_version()} at {sys.executable}")]
    checks += _torch_check()
    from forgeml.workspace import Workspace

    try:
        ws = Workspace.find()
    except ForgeError as e:
        from forgeml.plugin_manager import make_plugin_manager

        host = make_plugin_manager(report=lambda msg: None)
        try:
            checks += gpu_checks(host.provider("gpu_inventories", "nvml").factory(None, None))
        except ForgeError as gpu_error:
            checks.append(HealthCheck("gpus", False, str(gpu_error)))
        checks.append(HealthCheck("workspace", False, str(e)))
    else:
        host = ws.plugins
        try:
            checks += gpu_checks(ws.gpu_inventory)
        except ForgeError as e:
            checks.append(HealthCheck("gpus", False, str(e)))
        checks.append(HealthCheck("workspace", True, str(ws.root)))
        for label, attr in (("metadata store", "metadata"), ("artifact store", "artifacts")):
            try:
                store = getattr(ws, attr)
                checks.append(HealthCheck(label, True, getattr(store, "url", None) or getattr(store, "root", "")))
            except ForgeError as e:
                checks.append(HealthCheck(label, False, str(e)))
        checks.append(_orphaned_runs_check(ws))
    for info in host.infos:
        if info.error:
            checks.append(HealthCheck(f"plugin {info.name}", False, info.error))
        else:
            checks.append(HealthCheck(f"plugin {info.name}", True,
                                      f"{info.origin} {info.version}, {'enabled' if info.enabled else 'disabled'}"))
    return checks


def _orphaned_runs_check(ws: object) -> HealthCheck:
    """Mark runs left RUNNING by a killed process as KILLED, and say how many there were."""
    from forgeml.tracking.liveness import reap_orphaned_runs

    try:
        reaped = reap_orphaned_runs(ws)
    except ForgeError as e:
        return HealthCheck("orphaned runs", False, str(e))
    if reaped:
        return HealthCheck("orphaned runs", True, f"marked KILLED {len(reaped)} run(s) whose process is gone: "
                                                  + ", ".join(r[:8] for r in reaped[:10]))
    return HealthCheck("orphaned runs", True, "no RUNNING run has lost its process")
