"""The default placement policy: priority then FIFO, best-fit GPU packing, backfill and preemption."""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter

from forgeml.jobs.placement import GpuSlot, JobRequest, Placement, Resources, RunningJob
from forgeml.jobs.spec import gpu_matches

_by_seq = attrgetter("seq")
_by_priority = attrgetter("priority")


class _State:
    """Mutable capacity while one cycle hands out GPUs, CPUs and memory."""

    __slots__ = ("avail", "excl", "shared", "names", "cpus", "mem", "type_cache")

    def __init__(self, gpus: Sequence[GpuSlot], cpus: float, mem: int):
        self.avail = {g.index: g.available_mb for g in gpus}
        self.excl = {g.index: g.exclusive for g in gpus}
        self.shared = {g.index: g.shared_jobs for g in gpus}
        self.names = {g.index: g.name for g in gpus}
        self.cpus = cpus
        self.mem = mem
        self.type_cache: dict[str | None, list[int]] = {}

    def copy(self) -> _State:
        other = _State.__new__(_State)
        other.avail, other.excl, other.shared = dict(self.avail), dict(self.excl), dict(self.shared)
        other.names, other.cpus, other.mem, other.type_cache = self.names, self.cpus, self.mem, self.type_cache
        return other

    def of_type(self, gpu_type: str | None) -> list[int]:
        found = self.type_cache.get(gpu_type)
        if found is None:
            found = [i for i, n in self.names.items() if gpu_matches(gpu_type, n)]
            self.type_cache[gpu_type] = found
        return found

    def any_gpu_open(self) -> bool:
        return any(not e for e in self.excl.values())

    def fit(self, req: JobRequest) -> tuple[int, ...] | None:
        """Best fit: the GPUs with the least available memory that still satisfy the request."""
        if req.cpus > self.cpus + 1e-9 or req.memory_mb > self.mem:
            return None
        if not req.gpus:
            return ()
        need = req.min_gpu_memory_mb
        excl, shared, avail = self.excl, self.shared, self.avail
        if req.shared:
            ok = [i for i in self.of_type(req.gpu_type) if not excl[i] and avail[i] >= need]
        else:
            ok = [i for i in self.of_type(req.gpu_type) if not excl[i] and not shared[i] and avail[i] >= need]
        if len(ok) < req.gpus:
            return None
        ok.sort(key=avail.__getitem__)
        return tuple(ok[: req.gpus])

    def take(self, req: JobRequest, gpus: tuple[int, ...]) -> None:
        self.cpus -= req.cpus
        self.mem -= req.memory_mb
        for i in gpus:
            if req.shared:
                self.shared[i] += 1
                self.avail[i] -= req.min_gpu_memory_mb
            else:
                self.excl[i] = True

    def release(self, job: RunningJob) -> None:
        self.cpus += job.cpus
        self.mem += job.memory_mb
        for i in job.gpus:
            if i not in self.excl:
                continue
            if job.shared:
                self.shared[i] = max(0, self.shared[i] - 1)
                self.avail[i] += job.gpu_memory_mb
            else:
                self.excl[i] = False


class DefaultPlacementPolicy:
    """Priority, then FIFO; best-fit GPU packing; backfill of small jobs; preemption of lower priorities."""

    def __init__(self, backfill: bool = True, reserve_after_s: float = 1800.0, preemption: bool = True,
                 max_preemptions_per_cycle: int = 4):
        self.backfill = backfill
        self.reserve_after_s = reserve_after_s
        self.preemption = preemption
        self.max_preemptions_per_cycle = max_preemptions_per_cycle

    def place(self, pending: Sequence[JobRequest], gpus: Sequence[GpuSlot], resources: Resources) -> list[Placement]:
        """Return the placements for this cycle, never putting two exclusive jobs on one GPU."""
        state = _State(gpus, resources.cpus_free, resources.memory_free_mb)
        # two stable C-level sorts (near O(n) when the queue arrives in order) instead of a tuple key
        order = sorted(pending, key=_by_seq)
        order.sort(key=_by_priority, reverse=True)
        can_preempt = self.preemption and bool(resources.running)
        out: list[Placement] = []
        blocked: list[JobRequest] = []
        failed: set[tuple] = set()
        gpu_closed = not state.any_gpu_open()
        cpu_closed = state.cpus <= 1e-9
        for req in order:
            if gpu_closed and cpu_closed and (not can_preempt or len(blocked) >= self.max_preemptions_per_cycle):
                break  # nothing left to hand out and enough preemption candidates seen
            if req.gpus:
                if gpu_closed:
                    if len(blocked) < self.max_preemptions_per_cycle:
                        blocked.append(req)
                    continue
            elif cpu_closed and req.cpus > 0:
                if len(blocked) < self.max_preemptions_per_cycle:
                    blocked.append(req)
                continue
            sig = (req.gpus, req.gpu_type, req.min_gpu_memory_mb, req.shared, req.cpus, req.memory_mb)
            if sig in failed:
                if len(blocked) < self.max_preemptions_per_cycle:
                    blocked.append(req)
                continue
            chosen = state.fit(req)
            if chosen is None:
                failed.add(sig)
                if len(blocked) < self.max_preemptions_per_cycle:
                    blocked.append(req)
                if req.gpus and (not self.backfill or req.waited_s >= self.reserve_after_s):
                    gpu_closed = True  # hold GPUs for this job instead of letting smaller ones jump ahead
                continue
            state.take(req, chosen)
            out.append(Placement(req.job_id, chosen))
            if req.gpus and not state.any_gpu_open():
                gpu_closed = True
            if state.cpus <= 1e-9:
                cpu_closed = True
        if can_preempt and blocked:
            out.extend(self._preempt(blocked, state, resources.running))
        return out

    def _preempt(self, blocked: list[JobRequest], state: _State, running: list[RunningJob]) -> list[Placement]:
        """Pick lower-priority victims whose release lets a blocked job fit; stopping jobs count as freed."""
        out: list[Placement] = []
        sim = state.copy()
        for job in running:
            if job.stopping:
                sim.release(job)
        taken: set[str] = {j.job_id for j in running if j.stopping}
        for req in blocked:
            if sim.fit(req) is not None:
                sim.take(req, sim.fit(req) or ())  # already freed by jobs on their way out: just wait
                continue
            wanted = set(sim.of_type(req.gpu_type)) if req.gpus else set()
            victims = [j for j in running if j.preemptible and j.priority < req.priority and j.job_id not in taken
                       and (not req.gpus or wanted.intersection(j.gpus) or req.cpus > sim.cpus)]
            victims.sort(key=lambda j: (j.priority, -j.started_at))
            trial = sim.copy()
            chosen_victims: list[RunningJob] = []
            fit = None
            for v in victims:
                trial.release(v)
                chosen_victims.append(v)
                fit = trial.fit(req)
                if fit is not None:
                    break
            if fit is None:
                continue
            for v in list(reversed(chosen_victims[:-1])):  # drop victims the job does not need after all
                probe = sim.copy()
                for other in chosen_victims:
                    if other is not v:
                        probe.release(other)
                if probe.fit(req) is not None:
                    chosen_victims.remove(v)
            for v in chosen_victims:
                sim.release(v)
                taken.add(v.job_id)
            gpus = sim.fit(req) or ()
            sim.take(req, gpus)
            out.append(Placement(req.job_id, gpus, tuple(v.job_id for v in chosen_victims)))
        return out
