"""GPU inventories: NVML for real NVIDIA GPUs, and a declared inventory for tests and dry runs."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from forgeml import hookimpl
from forgeml.config import setting
from forgeml.contracts import GpuDevice

_nvml_lock = threading.Lock()
_nvml_ready: bool | None = None


def _init_nvml() -> Any:
    """Initialise NVML once per process; return the module, or None when no driver is present."""
    global _nvml_ready
    try:
        import pynvml
    except ImportError:
        return None
    with _nvml_lock:
        if _nvml_ready is None:
            try:
                pynvml.nvmlInit()
                _nvml_ready = True
            except pynvml.NVMLError:
                _nvml_ready = False
    return pynvml if _nvml_ready else None


class NvmlInventory:
    """Reads every visible NVIDIA GPU through NVML; no driver means an empty list (CPU mode)."""

    host_wide = True

    def devices(self) -> list[GpuDevice]:
        """Return the GPUs NVML reports, with free memory, utilization, power, temperature and processes."""
        nvml = _init_nvml()
        if nvml is None:
            return []
        out = []
        for i in range(nvml.nvmlDeviceGetCount()):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(h)
            try:
                util = float(nvml.nvmlDeviceGetUtilizationRates(h).gpu)
            except nvml.NVMLError:
                util = 0.0
            try:
                power = nvml.nvmlDeviceGetPowerUsage(h) / 1000.0
            except nvml.NVMLError:
                power = None
            try:
                temp = float(nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU))
            except nvml.NVMLError:
                temp = None
            try:
                procs = tuple(p.pid for p in nvml.nvmlDeviceGetComputeRunningProcesses(h))
            except nvml.NVMLError:
                procs = ()
            name = nvml.nvmlDeviceGetName(h)
            out.append(GpuDevice(
                index=i,
                name=name.decode() if isinstance(name, bytes) else name,
                memory_total_mb=mem.total // 2**20,
                memory_free_mb=mem.free // 2**20,
                utilization_pct=util,
                uuid=str(nvml.nvmlDeviceGetUUID(h)),
                power_w=power,
                temperature_c=temp,
                processes=procs,
            ))
        return out


@dataclass
class DeclaredSettings:
    """A declared inventory: GPUs that are assumed, not read (tests, dry runs, planning)."""

    count: int = setting(0, "How many GPUs to declare.")
    name: str = setting("NVIDIA H100 80GB HBM3", "Product name each declared GPU reports.")
    memory_mb: int = setting(81559, "Memory of each declared GPU in MiB.")
    host_wide: bool = setting(False, "Share these GPUs with other workspaces through host-wide leases, as real ones "
                              "are (try fair share and leases without hardware).")


class DeclaredInventory:
    """GPUs declared in plugins.toml, all idle: the scheduler places on them without touching hardware."""

    def __init__(self, settings: DeclaredSettings):
        self.settings = settings
        self.host_wide = settings.host_wide

    def devices(self) -> list[GpuDevice]:
        """Return the declared GPUs, all free."""
        s = self.settings
        return [GpuDevice(index=i, name=s.name, memory_total_mb=s.memory_mb, memory_free_mb=s.memory_mb,
                          uuid=f"GPU-declared-{i}") for i in range(s.count)]


@hookimpl
def forgeml_register_gpu_inventories(register):
    """Offer the NVML inventory and the declared one."""
    register("nvml", lambda settings, workspace: NvmlInventory(), description="real NVIDIA GPUs through NVML")
    register("declared", lambda settings, workspace: DeclaredInventory(settings), settings=DeclaredSettings,
             description="GPUs declared in plugins.toml (no hardware)")
