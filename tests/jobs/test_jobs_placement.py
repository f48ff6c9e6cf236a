"""The default placement policy on in-memory values: exclusivity, memory fit, priority, backfill, preemption.

GPUs here are plain GpuSlot values standing in for real devices (no hardware needed).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from forgeml.jobs.placement import GpuSlot, JobRequest, Resources, RunningJob
from forgeml.plugins.local.placement import DefaultPlacementPolicy


def gpus(n: int = 4, memory: int = 80_000, name: str = "NVIDIA H100 80GB HBM3") -> list[GpuSlot]:
    """n idle GPUs."""
    return [GpuSlot(i, name, memory, memory) for i in range(n)]


def res(cpus: float = 8, memory: int = 64_000, running: list[RunningJob] | None = None) -> Resources:
    """CPU/memory picture with the given running jobs."""
    return Resources(cpus, cpus, memory, memory, running or [])


def req(job_id: str, seq: int, gpus: int = 1, priority: int = 0, **kw) -> JobRequest:
    """A pending GPU job (GPU jobs reserve no CPU unless asked)."""
    return JobRequest(job_id, priority, seq, gpus, cpus=kw.pop("cpus", 0.0), **kw)


def test_priority_then_fifo_and_no_gpu_used_twice() -> None:
    """Higher priority first, then submission order; each exclusive GPU goes to one job."""
    pending = [req("a", 1), req("b", 2), req("hi", 3, priority=5), req("c", 4), req("d", 5)]
    out = DefaultPlacementPolicy().place(pending, gpus(3), res())
    assert [p.job_id for p in out] == ["hi", "a", "b"]
    used = [g for p in out for g in p.gpus]
    assert len(used) == len(set(used)) == 3


def test_memory_fit_and_best_fit_packing() -> None:
    """A job needing 40 GiB skips GPUs with less free; best fit picks the smallest GPU that fits."""
    slots = [GpuSlot(0, "H100", 81_000, 10_000), GpuSlot(1, "H100", 81_000, 81_000), GpuSlot(2, "H100", 81_000, 45_000)]
    out = DefaultPlacementPolicy().place([req("big", 1, min_gpu_memory_mb=40_000)], slots, res())
    assert out[0].gpus == (2,)
    out = DefaultPlacementPolicy().place([req("huge", 1, min_gpu_memory_mb=60_000)], slots, res())
    assert out[0].gpus == (1,)
    assert DefaultPlacementPolicy().place([req("x", 1, min_gpu_memory_mb=90_000)], slots, res()) == []


def test_shared_jobs_pack_by_memory_and_never_join_an_exclusive_gpu() -> None:
    """Shared jobs share a GPU while their promised memory fits; exclusive jobs never share."""
    slots = gpus(2, memory=40_000)
    slots[0].exclusive = True
    pending = [req(f"s{i}", i, shared=True, min_gpu_memory_mb=15_000) for i in range(4)] + [req("ex", 9)]
    out = DefaultPlacementPolicy().place(pending, slots, res())
    placed = {p.job_id: p.gpus for p in out}
    assert placed == {"s0": (1,), "s1": (1,)}  # two 15 GB jobs fill GPU 1; GPU 0 is held exclusively


def test_gpu_type_is_respected() -> None:
    """A job asking for an A100 only lands on A100s."""
    slots = [GpuSlot(0, "NVIDIA H100 80GB HBM3", 80_000, 80_000), GpuSlot(1, "NVIDIA A100-SXM4-40GB", 40_000, 40_000)]
    out = DefaultPlacementPolicy().place([req("a", 1, gpu_type="A100"), req("b", 2, gpu_type="A100")], slots, res())
    assert [(p.job_id, p.gpus) for p in out] == [("a", (1,))]


def test_backfill_lets_a_small_job_use_a_gap_a_big_job_cannot() -> None:
    """With 1 GPU free, a blocked 2-GPU job does not stop a later 1-GPU job (backfill)."""
    slots = gpus(4)
    for s in slots[:3]:
        s.exclusive = True
    pending = [req("big", 1, gpus=2, priority=5), req("small", 2)]
    assert [p.job_id for p in DefaultPlacementPolicy(preemption=False).place(pending, slots, res())] == ["small"]
    assert DefaultPlacementPolicy(backfill=False, preemption=False).place(pending, slots, res()) == []
    starving = [req("big", 1, gpus=2, priority=5, waited_s=4000), req("small", 2)]
    assert DefaultPlacementPolicy(reserve_after_s=3600, preemption=False).place(starving, slots, res()) == []


def test_cpu_jobs_fit_cpu_and_memory_limits() -> None:
    """CPU-only jobs place while cores and memory last; a big one does not block smaller ones."""
    pending = [JobRequest("a", 0, 1, cpus=2), JobRequest("huge", 0, 2, cpus=1, memory_mb=100_000),
               JobRequest("b", 0, 3, cpus=1), JobRequest("c", 0, 4, cpus=1)]
    out = DefaultPlacementPolicy().place(pending, [], res(cpus=3, memory=8_000))
    assert [p.job_id for p in out] == ["a", "b"]


def test_preemption_picks_the_lowest_priority_victim_that_frees_enough() -> None:
    """A high-priority job that cannot fit stops the fewest lower-priority jobs holding what it needs."""
    slots = gpus(2)
    for s in slots:
        s.exclusive = True
    running = [RunningJob("low", 0, (0,), started_at=1), RunningJob("mid", 3, (1,), started_at=2)]
    out = DefaultPlacementPolicy().place([req("urgent", 1, priority=5)], slots, res(running=running))
    assert [(p.job_id, p.preempt) for p in out] == [("urgent", ("low",))]
    protected = [RunningJob("low", 0, (0,), preemptible=False), RunningJob("mid", 7, (1,))]
    assert DefaultPlacementPolicy().place([req("urgent", 1, priority=5)], slots, res(running=protected)) == []


def test_no_second_victim_while_the_first_is_stopping() -> None:
    """While a victim is on its way out, the waiting job does not preempt anyone else."""
    slots = gpus(2)
    for s in slots:
        s.exclusive = True
    running = [RunningJob("low", 0, (0,), stopping=True), RunningJob("low2", 0, (1,))]
    assert DefaultPlacementPolicy().place([req("urgent", 1, priority=5)], slots, res(running=running)) == []


@settings(max_examples=60, deadline=None)
@given(
    jobs=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3), st.booleans(), st.sampled_from([0, 20_000, 50_000])),
                  max_size=40),
    held=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_property_never_two_exclusive_jobs_on_one_gpu(jobs, held) -> None:
    """For any queue, no GPU gets two exclusive jobs, nor an exclusive job beside a shared one or a holder."""
    slots = gpus(4)
    for s, h in zip(slots, held):
        s.exclusive = h
    pending = [req(f"j{i}", i, gpus=g, priority=p, shared=sh, min_gpu_memory_mb=m)
               for i, (g, p, sh, m) in enumerate(jobs)]
    by_id = {r.job_id: r for r in pending}
    out = DefaultPlacementPolicy(preemption=False).place(pending, slots, res())
    exclusive, shared = set(), {}
    for p in out:
        r = by_id[p.job_id]
        assert len(p.gpus) == r.gpus and len(set(p.gpus)) == r.gpus
        for g in p.gpus:
            assert not slots[g].exclusive and g not in exclusive
            if r.shared:
                shared[g] = shared.get(g, 0) + r.min_gpu_memory_mb
                assert shared[g] <= 80_000
            else:
                assert g not in shared
                exclusive.add(g)
