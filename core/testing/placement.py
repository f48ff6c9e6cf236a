"""Conformance suite for placement policies (contract: :class:`forgeml.contracts.PlacementPolicy`).

Subclass :class:`PlacementPolicySuite` as ``Test...`` and give it a ``policy`` fixture. Every plan
the suite asks for is checked by :func:`forgeml.jobs.plans.plan_problems`, the same check the
scheduler applies before it acts (a plan that fails it is refused, naming the policy). The rules:

- ``place`` returns a list of ``Placement``; each names a pending job once;
- a started job gets exactly the GPUs it asks for, distinct, existing, of its type, with its memory;
- no exclusive GPU is shared: never two exclusive jobs on one GPU, never an exclusive job beside a
  shared one; shared jobs never promise more memory than a GPU has;
- the CPUs and memory handed out stay within what is free;
- a preemption names only running, preemptible jobs of lower priority;
- the policy makes progress: on an idle machine a job that fits is started, and when one GPU is free
  and two jobs want it, the higher priority gets it.
"""

from __future__ import annotations

from typing import Any

import pytest

from forgeml.contracts import PlacementPolicy


def _values() -> Any:
    from forgeml.jobs import placement

    return placement


def _gpus(n: int, name: str = "NVIDIA H100 80GB HBM3", memory_mb: int = 81559, **held: Any) -> list[Any]:
    p = _values()
    return [p.GpuSlot(i, name, memory_mb, memory_mb, **held) for i in range(n)]


def _resources(cpus: float = 16.0, memory_mb: int = 65536, running: list[Any] | None = None) -> Any:
    return _values().Resources(cpus, cpus, memory_mb, memory_mb, running or [])


def _job(job_id: str, **needs: Any) -> Any:
    return _values().JobRequest(job_id, seq=int(job_id.rsplit("-", 1)[-1]) if "-" in job_id else 0, **needs)


class PlacementPolicySuite:
    """Tests every placement policy must pass; subclass it and define a ``policy`` fixture."""

    @pytest.fixture
    def policy(self) -> Any:
        """The policy under test: override it."""
        pytest.fail("define a `policy` fixture returning your placement policy", pytrace=False)

    def place(self, policy: Any, pending: list[Any], gpus: list[Any], resources: Any) -> list[Any]:
        """Ask the policy for a plan and fail the test with every problem the kernel would refuse it for."""
        from forgeml.jobs.plans import plan_problems

        plan = policy.place(pending, gpus, resources)
        problems = plan_problems(pending, gpus, resources, plan)
        assert not problems, f"the scheduler would refuse this plan: {'; '.join(problems)} (plan: {plan!r})"
        return list(plan)

    def test_implements_the_contract(self, policy: Any) -> None:
        """The policy has the place() method of the PlacementPolicy protocol."""
        assert isinstance(policy, PlacementPolicy)

    def test_starts_a_job_that_fits_an_idle_machine(self, policy: Any) -> None:
        """One job asking for 2 GPUs on an idle 4-GPU machine is started on 2 of them."""
        plan = self.place(policy, [_job("job-1", gpus=2)], _gpus(4), _resources())
        assert [(p.job_id, len(p.gpus)) for p in plan] == [("job-1", 2)], f"expected job-1 on 2 GPUs, got {plan}"

    def test_exclusive_jobs_never_share_a_gpu(self, policy: Any) -> None:
        """Three exclusive one-GPU jobs on two GPUs: at most two start, on different GPUs."""
        plan = self.place(policy, [_job(f"job-{i}", gpus=1) for i in range(1, 4)], _gpus(2), _resources())
        assert len([p for p in plan if not p.preempt]) <= 2

    def test_held_gpus_are_left_alone(self, policy: Any) -> None:
        """A GPU an exclusive job holds is not handed out; a GPU shared jobs use is not given exclusively."""
        gpus = _gpus(2)
        gpus[0].exclusive = True
        gpus[1].shared_jobs, gpus[1].reserved_mb = 1, 40000
        running = [_values().RunningJob("old-1", 0, (0,), preemptible=False),
                   _values().RunningJob("old-2", 0, (1,), shared=True, gpu_memory_mb=40000, preemptible=False)]
        plan = self.place(policy, [_job("job-1", gpus=1)], gpus, _resources(running=running))
        assert [p for p in plan if not p.preempt] == [], f"expected nothing started, got {plan}"

    def test_shared_jobs_fit_by_memory(self, policy: Any) -> None:
        """Shared jobs stack on one GPU only while their promised memory fits."""
        pending = [_job(f"job-{i}", gpus=1, shared=True, min_gpu_memory_mb=30000) for i in range(1, 4)]
        self.place(policy, pending, _gpus(1), _resources())

    def test_gpu_type_and_memory_are_respected(self, policy: Any) -> None:
        """A job asking for an A100 with 60 GB is not put on a 24 GB L4."""
        p = _values()
        gpus = [p.GpuSlot(0, "NVIDIA L4", 23034, 23034), p.GpuSlot(1, "NVIDIA A100-SXM4-80GB", 81920, 81920)]
        plan = self.place(policy, [_job("job-1", gpus=1, gpu_type="A100", min_gpu_memory_mb=60000)], gpus,
                          _resources())
        assert [(x.job_id, x.gpus) for x in plan] == [("job-1", (1,))], f"expected job-1 on GPU 1, got {plan}"

    def test_cpu_and_memory_stay_within_what_is_free(self, policy: Any) -> None:
        """CPU-only jobs are started only while CPUs and memory last."""
        pending = [_job(f"job-{i}", cpus=3.0, memory_mb=1024) for i in range(1, 6)]
        plan = self.place(policy, pending, [], _resources(cpus=8.0))
        assert 1 <= len(plan) <= 2, f"expected 1 or 2 of five 3-CPU jobs on 8 CPUs, got {plan}"

    def test_higher_priority_gets_the_last_gpu(self, policy: Any) -> None:
        """With one GPU free, the higher-priority job gets it even when it was submitted later."""
        plan = self.place(policy, [_job("job-1", gpus=1, priority=0), _job("job-2", gpus=1, priority=5)],
                          _gpus(1), _resources())
        started = [p.job_id for p in plan if not p.preempt]
        assert started == ["job-2"], f"expected job-2 (priority 5) to start, got {started}"

    def test_preemption_picks_only_lower_priority_preemptible_jobs(self, policy: Any) -> None:
        """When a GPU is held, a plan may stop only a running, preemptible, lower-priority job."""
        gpus = _gpus(2, exclusive=True)
        running = [_values().RunningJob("low-1", 0, (0,), preemptible=True),
                   _values().RunningJob("pinned-2", 0, (1,), preemptible=False)]
        plan = self.place(policy, [_job("job-1", gpus=1, priority=9)], gpus, _resources(running=running))
        assert all(set(p.preempt) <= {"low-1"} for p in plan), f"only low-1 may be preempted, got {plan}"

    def test_nothing_to_place(self, policy: Any) -> None:
        """No pending job gives an empty plan."""
        assert self.place(policy, [], _gpus(2), _resources()) == []
