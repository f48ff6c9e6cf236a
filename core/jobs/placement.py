"""What the scheduler hands a placement policy and what a policy returns (contract: PlacementPolicy).

The scheduler hands a policy plain values: the pending jobs' needs (:class:`JobRequest`), each GPU's
state after the jobs already running (:class:`GpuSlot`) and the CPU/memory picture with the running
jobs (:class:`Resources`). The policy returns :class:`Placement` values; a placement with
``preempt`` names lower-priority jobs to stop first (the job itself starts in a later cycle, once
they have released what it needs).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class JobRequest:
    """What one pending job needs from the machine."""

    job_id: str
    priority: int = 0
    seq: int = 0
    gpus: int = 0
    gpu_type: str | None = None
    min_gpu_memory_mb: int = 0
    shared: bool = False
    cpus: float = 1.0
    memory_mb: int = 0
    waited_s: float = 0.0


@dataclass(slots=True)
class GpuSlot:
    """One GPU as placement sees it: the device plus what forgeml jobs already hold on it."""

    index: int
    name: str
    memory_total_mb: int
    memory_free_mb: int
    exclusive: bool = False
    shared_jobs: int = 0
    reserved_mb: int = 0

    def hold(self, shared: bool, memory_mb: int = 0) -> None:
        """Count a job (of this workspace or another) that holds this GPU: shared with its memory, or whole."""
        if shared:
            self.shared_jobs += 1
            self.reserved_mb += memory_mb
        else:
            self.exclusive = True

    @property
    def available_mb(self) -> int:
        """Memory a new job may count on: what is free, less what shared jobs were promised."""
        return max(0, min(self.memory_free_mb, self.memory_total_mb - self.reserved_mb))


@dataclass(slots=True)
class RunningJob:
    """A job holding resources now; preemption may pick it when it is preemptible."""

    job_id: str
    priority: int = 0
    gpus: tuple[int, ...] = ()
    shared: bool = False
    gpu_memory_mb: int = 0
    cpus: float = 0.0
    memory_mb: int = 0
    preemptible: bool = True
    started_at: float = 0.0
    stopping: bool = False


@dataclass
class Resources:
    """CPU and memory of the local target, and the jobs running on it."""

    cpus_total: float
    cpus_free: float
    memory_total_mb: int
    memory_free_mb: int
    running: list[RunningJob] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Placement:
    """Start job_id on these GPUs now, or (when preempt is set) stop those jobs first."""

    job_id: str
    gpus: tuple[int, ...] = ()
    preempt: tuple[str, ...] = ()
