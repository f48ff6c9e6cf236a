"""Settings of the local plugin: the workstation as a compute target, and the default placement policy."""

from __future__ import annotations

from dataclasses import dataclass

from forgeml.config import setting


@dataclass
class LocalTargetSettings:
    """The workstation itself as a compute target."""

    cpus: int = setting(0, "CPU cores jobs may use in total (0: every core this process may run on).")
    memory: str = setting("", "Memory jobs may reserve in total, e.g. \"48Gi\" (empty: all of this machine's RAM).")
    pin_cpus: bool = setting(True, "Pin CPU-only jobs that ask for whole CPUs to that many cores.")
    limit_memory: bool = setting(True, "Cap the address space (RLIMIT_AS) of CPU-only jobs that set memory.")
    python: str = setting("", "Python interpreter for script jobs (empty: the scheduler's own).")


@dataclass
class DefaultPolicySettings:
    """The default placement policy."""

    backfill: bool = setting(True, "Let smaller, lower-priority jobs use GPUs a blocked bigger job cannot use yet.")
    reserve_after_s: float = setting(
        1800.0, "After a blocked GPU job waited this long, stop backfilling so it gets the next free GPUs."
    )
    preemption: bool = setting(True, "Stop lower-priority preemptible jobs (SIGTERM) when a higher-priority job needs their resources.")
