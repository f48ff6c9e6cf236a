"""Fair share on one shared GPU box: 3 users, 4 GPUs, a simulated day of 1-GPU jobs of random lengths.

Prints one JSON line. The lease and fair-share code is forgeml's own (``forgeml.jobs.host``: the real
state file, lock and ranking, in a temporary host folder); only the clock and the jobs are simulated,
one scheduler cycle per simulated minute per user. Two workloads:

- ``steady``: every user has demand all day; each user's GPU-hours should match their share.
- ``lent``: one user is idle for the first 6 hours (their share is lent to the others) and then
  submits; their share is taken back by preemption after the grace period. Reported: how long they
  waited for their share, and their GPU-hours from the moment they submitted.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import finish

from forgeml.jobs.host import Demand, HostLeases, HostPolicy, Lease

GPUS = [f"GPU-sim-{i}" for i in range(4)]
STEP_S = 60.0


@dataclass
class SimJob:
    """A simulated 1-GPU job: its remaining work and, while it runs, its pid and GPU."""

    job_id: str
    remaining_s: float
    pid: int | None = None
    gpu: str | None = None


class Sim:
    """A fake clock and process table driving the real host leases."""

    def __init__(self, folder: Path, shares: dict[str, float], grace_s: float, seed: int):
        self.now = 0.0
        self.alive_pids: set[int] = set()
        self.next_pid = 1000
        self.rng = random.Random(seed)
        self.host = HostLeases(folder, clock=lambda: self.now, alive=self._alive)
        self.policy = HostPolicy(shares=shares, half_life_h=2.0, grace_s=grace_s)
        self.queues: dict[str, list[SimJob]] = {u: [] for u in shares}
        self.running: dict[str, list[SimJob]] = {u: [] for u in shares}
        self.gpu_s: dict[str, float] = dict.fromkeys(shares, 0.0)
        self.preemptions = 0
        self.seq = 0

    def _alive(self, pid: int | None, ctime: float | None) -> bool:
        import os

        return pid in self.alive_pids or pid == os.getpid()

    def submit(self, user: str, n: int) -> None:
        for _ in range(n):
            self.seq += 1
            # lengths from 5 minutes to 3 hours, skewed short as real research jobs are
            length = min(3 * 3600.0, 300.0 + self.rng.expovariate(1 / 2400.0))
            self.queues[user].append(SimJob(f"{user}-{self.seq}", length))

    def cycle(self, user: str) -> None:
        """One scheduler cycle of this user's workspace."""
        running = self.running[user]
        leases = [Lease(user, j.job_id, user, [j.gpu or ""], [GPUS.index(j.gpu or GPUS[0])], pid=j.pid)
                  for j in running]
        queued = self.queues[user]
        demand = Demand(user, min(len(queued), len(GPUS)), self.now, self.now, [j.job_id for j in queued[:4]])
        view = self.host.sync(user, user, leases, demand if queued else None, len(GPUS), self.policy)
        for job_id in view.preempt:  # give the GPU back; the job resumes later from its checkpoint
            job = next(j for j in running if j.job_id == job_id)
            running.remove(job)
            self.alive_pids.discard(job.pid or 0)
            self.host.release(user, job.job_id)
            job.pid, job.gpu = None, None
            queued.insert(0, job)
            self.preemptions += 1
        taken = {lease.gpus[0] for lease in view.foreign} | {j.gpu for j in running}
        free = [g for g in GPUS if g not in taken]
        for gpu in free[: view.allowance]:
            if not queued:
                break
            job = queued.pop(0)
            self.next_pid += 1
            job.pid, job.gpu = self.next_pid, gpu
            self.alive_pids.add(job.pid)
            why = self.host.claim(Lease(user, job.job_id, user, [gpu], [GPUS.index(gpu)], pid=job.pid), self.policy)
            if why is not None:
                raise AssertionError(f"simulated claim refused: {why}")
            running.append(job)

    def advance(self) -> None:
        """Let one step of time pass: running jobs progress and some finish."""
        self.now += STEP_S
        for user, running in self.running.items():
            for job in list(running):
                job.remaining_s -= STEP_S
                self.gpu_s[user] += STEP_S
                if job.remaining_s <= 0:
                    running.remove(job)
                    self.alive_pids.discard(job.pid or 0)

    def busy(self) -> int:
        return sum(len(r) for r in self.running.values())


def steady(shares: dict[str, float], hours: float, seed: int) -> dict:
    """Every user keeps a queue all day: GPU-hours per user against their share, and occupancy."""
    with tempfile.TemporaryDirectory() as tmp:
        sim = Sim(Path(tmp), shares, grace_s=300.0, seed=seed)
        busy_s = 0.0
        steps = int(hours * 3600 / STEP_S)
        for _ in range(steps):
            for user in shares:
                if len(sim.queues[user]) < 4:
                    sim.submit(user, 4)
            order = list(shares)
            sim.rng.shuffle(order)
            for user in order:
                sim.cycle(user)
            busy_s += sim.busy() * STEP_S
            sim.advance()
        total = sum(sim.gpu_s.values())
        weight = sum(shares.values())
        users = {}
        worst = 0.0
        for user, share in shares.items():
            target = share / weight
            got = sim.gpu_s[user] / total
            off = abs(got - target) / target
            worst = max(worst, off)
            users[user] = {"share": round(target, 3), "gpu_hours": round(sim.gpu_s[user] / 3600, 2),
                           "fraction": round(got, 4), "off_by_pct": round(100 * off, 2)}
        return {"users": users, "worst_off_by_pct": round(100 * worst, 2),
                "occupancy": round(busy_s / (len(GPUS) * steps * STEP_S), 4), "preemptions": sim.preemptions}


def lent(shares: dict[str, float], hours: float, late_user: str, late_at_h: float, grace_s: float, seed: int) -> dict:
    """One user arrives late: the others borrow their share, which preemption gives back after the grace."""
    with tempfile.TemporaryDirectory() as tmp:
        sim = Sim(Path(tmp), shares, grace_s=grace_s, seed=seed)
        steps = int(hours * 3600 / STEP_S)
        arrived = None
        got_share_at = None
        busy_s = 0.0
        late_gpu_s_at_arrival = 0.0
        weight = sum(shares.values())
        fair = int(len(GPUS) * shares[late_user] / weight)
        for _ in range(steps):
            for user in shares:
                if user == late_user and sim.now < late_at_h * 3600:
                    continue
                if user == late_user and arrived is None:
                    arrived = sim.now
                if len(sim.queues[user]) < 4:
                    sim.submit(user, 4)
            order = list(shares)
            sim.rng.shuffle(order)
            for user in order:
                sim.cycle(user)
            if arrived is not None and got_share_at is None and len(sim.running[late_user]) >= fair:
                got_share_at = sim.now
                late_gpu_s_at_arrival = sim.gpu_s[late_user]
            busy_s += sim.busy() * STEP_S
            sim.advance()
        after = (hours - late_at_h) * 3600
        return {"late_user": late_user, "fair_gpus": fair,
                "waited_for_share_s": None if got_share_at is None else round(got_share_at - arrived, 1),
                "grace_s": grace_s,
                "late_user_fraction_after_arrival": round((sim.gpu_s[late_user] - late_gpu_s_at_arrival)
                                                          / (len(GPUS) * after), 4),
                "late_user_share": round(shares[late_user] / weight, 3),
                "occupancy": round(busy_s / (len(GPUS) * steps * STEP_S), 4), "preemptions": sim.preemptions}


def main() -> None:
    """Run both workloads and print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    shares = {"alice": 5.0, "bob": 3.0, "carol": 2.0}
    result = {
        "gpus": len(GPUS), "simulated_hours": args.hours, "step_s": STEP_S,
        "steady": steady(shares, args.hours, args.seed),
        "equal_shares": steady({"alice": 1.0, "bob": 1.0, "carol": 1.0}, args.hours, args.seed),
        "lent": lent({"alice": 1.0, "bob": 1.0, "carol": 2.0}, args.hours, "carol", 6.0, 300.0, args.seed),
    }
    result["floors"] = {"gpu_hours_within_10pct_of_share": max(result["steady"]["worst_off_by_pct"],
                                                               result["equal_shares"]["worst_off_by_pct"]) <= 10.0,
                        "occupancy_at_least_95pct": min(result["steady"]["occupancy"],
                                                        result["equal_shares"]["occupancy"]) >= 0.95}
    finish("fairshare", result)


if __name__ == "__main__":
    main()
