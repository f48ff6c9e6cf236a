"""The kernel's checks of placement: whether a policy's plan is possible, and whether a job can ever fit.

The scheduler does not trust a placement policy (a plugin): before it launches anything, every plan
goes through :func:`plan_problems`, and a plan with a problem is refused naming the policy. The
conformance suite for placement policies runs the same checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .placement import GpuSlot, JobRequest, Placement, Resources
from .spec import gpu_matches

_EPS = 1e-9


def plan_problems(pending: Sequence[JobRequest], gpus: Sequence[GpuSlot], resources: Resources,
                  plan: Any) -> list[str]:
    """Return what is wrong with a policy's plan (empty when it can be carried out as given)."""
    if not isinstance(plan, list | tuple):
        return [f"place() must return a list of Placement, got {type(plan).__name__}"]
    problems: list[str] = []
    by_id = {r.job_id: r for r in pending}
    slots = {g.index: g for g in gpus}
    running = {j.job_id: j for j in resources.running}
    exclusive = {g.index for g in gpus if g.exclusive}
    shared = {g.index: g.shared_jobs for g in gpus}
    memory = {g.index: g.available_mb for g in gpus}
    cpus, mem = resources.cpus_free, resources.memory_free_mb
    seen: set[str] = set()
    for p in plan:
        if not isinstance(p, Placement):
            problems.append(f"expected Placement values, got {type(p).__name__} {p!r}")
            continue
        req = by_id.get(p.job_id)
        if req is None:
            problems.append(f"job {p.job_id!r} is not one of the pending jobs it was given")
            continue
        if p.job_id in seen:
            problems.append(f"job {p.job_id!r} is placed twice")
            continue
        seen.add(p.job_id)
        if p.preempt:
            for victim in p.preempt:
                job = running.get(victim)
                if job is None:
                    problems.append(f"job {p.job_id!r} preempts {victim!r}, which is not running")
                elif not job.preemptible or job.priority >= req.priority:
                    problems.append(f"job {p.job_id!r} (priority {req.priority}) preempts {victim!r} "
                                    f"(priority {job.priority}{', not preemptible' if not job.preemptible else ''})")
            continue
        problems.extend(_gpu_problems(p, req, slots, exclusive, shared, memory))
        cpus -= req.cpus
        mem -= req.memory_mb
    if cpus < -_EPS:
        problems.append(f"the plan uses {resources.cpus_free - cpus:g} CPUs but {resources.cpus_free:g} are free")
    if mem < 0:
        problems.append(f"the plan uses {resources.memory_free_mb - mem} MiB of memory but "
                        f"{resources.memory_free_mb} MiB are free")
    return problems


def _gpu_problems(p: Placement, req: JobRequest, slots: dict[int, GpuSlot], exclusive: set[int],
                  shared: dict[int, int], memory: dict[int, int]) -> list[str]:
    """Check one placement's GPUs against what the cycle has handed out so far (and take them)."""
    job = f"job {p.job_id!r}"
    if len(p.gpus) != req.gpus or len(set(p.gpus)) != len(p.gpus):
        return [f"{job} asks for {req.gpus} GPU(s) but was given {list(p.gpus)}"]
    out: list[str] = []
    for i in p.gpus:
        slot = slots.get(i)
        if slot is None:
            out.append(f"{job} was given GPU {i}, which does not exist (GPUs: {sorted(slots)})")
            continue
        if not gpu_matches(req.gpu_type, slot.name):
            out.append(f"{job} wants a {req.gpu_type} but GPU {i} is a {slot.name}")
        if i in exclusive:
            out.append(f"{job} was given GPU {i}, which an exclusive job already holds")
        elif not req.shared and shared[i]:
            out.append(f"{job} needs GPU {i} to itself but {shared[i]} shared job(s) use it")
        elif memory[i] < req.min_gpu_memory_mb:
            out.append(f"{job} needs {req.min_gpu_memory_mb} MiB on GPU {i} but {memory[i]} MiB are available")
        if req.shared:
            shared[i] += 1
            memory[i] -= req.min_gpu_memory_mb
        else:
            exclusive.add(i)
    return out


def never_fits(req: JobRequest, gpus: Sequence[GpuSlot], resources: Resources) -> str | None:
    """Return why a job cannot run even on the idle machine, or None when some placement could fit it."""
    if req.cpus > resources.cpus_total + _EPS:
        return f"it asks for {req.cpus:g} CPUs but the target has {resources.cpus_total:g}"
    if req.memory_mb > resources.memory_total_mb:
        return f"it asks for {req.memory_mb} MiB of memory but the target has {resources.memory_total_mb} MiB"
    if not req.gpus:
        return None
    kind = f"{req.gpu_type} GPU" if req.gpu_type else "GPU"
    fit = [g for g in gpus if gpu_matches(req.gpu_type, g.name) and g.memory_total_mb >= req.min_gpu_memory_mb]
    if len(fit) < req.gpus:
        memory = f" with {req.min_gpu_memory_mb} MiB" if req.min_gpu_memory_mb else ""
        return f"it asks for {req.gpus} {kind}(s){memory} but the machine has {len(fit)} such of {len(gpus)}"
    return None
