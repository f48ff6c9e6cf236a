"""Remote GPU discovery with nvidia-smi (absent or failing means a CPU-only host)."""

from __future__ import annotations

from forgeml.contracts import GpuDevice
from forgeml.plugins.remote.hosts import Host

NVIDIA_SMI = ("nvidia-smi --query-gpu=index,name,memory.total,memory.free,utilization.gpu,uuid "
              "--format=csv,noheader,nounits")


def parse_nvidia_smi(text: str) -> list[GpuDevice]:
    """Parse nvidia-smi's CSV query output into devices (lines it cannot read are skipped)."""
    devices = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 6 or not parts[0].isdigit():
            continue

        def num(value: str) -> float:
            try:
                return float(value)
            except ValueError:
                return 0.0  # "[N/A]" on some boards
        devices.append(GpuDevice(index=int(parts[0]), name=parts[1], memory_total_mb=int(num(parts[2])),
                                 memory_free_mb=int(num(parts[3])), utilization_pct=num(parts[4]), uuid=parts[5]))
    return devices


def remote_gpus(host: Host) -> list[GpuDevice]:
    """Return the host's GPUs; an empty list when nvidia-smi is missing or finds none."""
    result = host.run(f"command -v nvidia-smi >/dev/null 2>&1 || exit 127; {NVIDIA_SMI}", timeout=30)
    if not result.ok:
        return []
    return parse_nvidia_smi(result.stdout)


def pick_gpus(devices: list[GpuDevice], count: int, gpu_type: str = "") -> list[GpuDevice] | None:
    """Choose count devices of the wanted type with the most free memory, or None when too few."""
    wanted = gpu_type.lower().replace("-", "").replace(" ", "")
    pool = [d for d in devices if not wanted or wanted in d.name.lower().replace("-", "").replace(" ", "")]
    if len(pool) < count:
        return None
    return sorted(pool, key=lambda d: (-d.memory_free_mb, d.utilization_pct, d.index))[:count]


def describe(devices: list[GpuDevice]) -> str:
    """Return a one-line summary such as '2 GPUs: NVIDIA A100 (80 GiB)' or 'no GPUs (CPU only)'."""
    if not devices:
        return "no GPUs (nvidia-smi not found or no devices): CPU only"
    names = sorted({f"{d.name} ({d.memory_total_mb // 1024} GiB)" for d in devices})
    return f"{len(devices)} GPU{'s' if len(devices) > 1 else ''}: {', '.join(names)}"
