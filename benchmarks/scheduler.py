"""Scheduler benchmark: submit-to-RUNNING latency, one placement cycle at 10,000 pending, a 200-job drain.

Prints one JSON line. GPUs are the ``declared`` inventory (8 fake H100s): placement is real, devices
are not. The drain is compared with the floor any scheduler could reach: the same 200 processes run
by a bare pool of one worker per core, in the same run.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import finish

CONFIG = """
[scheduler]
poll_interval_s = 0.5

[scheduler.inventory]
plugin = "declared"
count = 8
"""


def open_workspace(root: Path, config: str = CONFIG):
    """Create a benchmark workspace, current and cwd, with this plugins.toml (default: 8 declared GPUs)."""
    from forgeml.workspace import Workspace, set_current

    Workspace.init(root)
    (root / "plugins.toml").write_text(config)
    ws = Workspace(root)
    set_current(ws)
    os.environ["FORGEML_HOME"] = str(root)
    os.chdir(root)
    return ws


def start_scheduler(ws) -> subprocess.Popen:
    """Start `forgeml scheduler` as its own process and wait until it holds the lock."""
    from forgeml.jobs.wake import SchedulerLock

    proc = subprocess.Popen([sys.executable, "-m", "forgeml", "scheduler"], cwd=ws.root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock = SchedulerLock(ws)
    while lock.holder() != proc.pid:
        if proc.poll() is not None:
            raise SystemExit("scheduler failed to start")
        time.sleep(0.02)
    return proc


def submit_latency(ws, samples: int = 30) -> dict:
    """Submit jobs one at a time with the scheduler running; time submit -> RUNNING and -> process start."""
    from forgeml.jobs import JobSpec, submit, wait
    from forgeml.jobs.queue import jobs_store

    store = jobs_store(ws)
    to_running, to_process = [], []
    command = ["sh", "-c", 'date +%s.%N > "$FORGEML_CHECKPOINT_DIR/started"']
    for _ in range(samples):
        t0 = time.time()
        job = submit(JobSpec(command=command, gpus=1), ws)
        while True:
            row = store.query("SELECT started_at FROM jobs WHERE id = ?", (job.id,))[0]
            if row["started_at"]:
                break
            time.sleep(0.002)
        to_running.append(row["started_at"] - t0)
        wait(job.id, timeout=30, workspace=ws, poll_s=0.01)
        marker = ws.dot / "jobs" / job.id / "checkpoints" / "started"
        to_process.append(float(marker.read_text()) - t0)
    return {"submit_to_running_p50_ms": round(statistics.median(to_running) * 1000, 1),
            "submit_to_running_max_ms": round(max(to_running) * 1000, 1),
            "submit_to_process_start_p50_ms": round(statistics.median(to_process) * 1000, 1)}


def placement_cycle(repeats: int = 15) -> dict:
    """Time DefaultPlacementPolicy.place over 10,000 pending jobs and 8 idle fake GPUs."""
    from forgeml.jobs.placement import GpuSlot, JobRequest, Resources
    from forgeml.plugins.local.placement import DefaultPlacementPolicy

    rng = random.Random(0)
    pending = []
    for i in range(10_000):
        gpus = rng.choices([0, 1, 2, 4], weights=[20, 50, 20, 10])[0]
        shared = gpus == 1 and rng.random() < 0.3
        pending.append(JobRequest(f"job{i}", rng.randrange(10), i, gpus, rng.choice([None, None, "H100", "A100"]),
                                  rng.choice([0, 20_000, 40_000]) if gpus else 0, shared,
                                  0.0 if gpus else float(rng.choice([1, 2])), rng.choice([0, 4096]), 0.0))
    slots = [GpuSlot(i, "NVIDIA H100 80GB HBM3", 81_559, 81_559) for i in range(8)]
    policy = DefaultPlacementPolicy()
    times, placed = [], 0
    for _ in range(repeats):
        resources = Resources(16, 16, 128_000, 128_000, [])
        t = time.perf_counter()
        placed = len(policy.place(pending, slots, resources))
        times.append(time.perf_counter() - t)
    return {"placement_cycle_10k_pending_8_gpus_ms": round(statistics.median(times) * 1000, 2),
            "placement_jobs_placed": placed}


def full_cycle_read(ws, count: int = 10_000, repeats: int = 5) -> dict:
    """Time the scheduler's read of 10,000 pending rows into placement requests plus place() itself."""
    from forgeml.jobs import Scheduler
    from forgeml.jobs.queue import jobs_store

    rng = random.Random(1)
    now = time.time()
    rows = [(f"bulk{i:05d}", "bulk", "{}", "PENDING", "local", rng.randrange(10), rng.choice([1, 2, 4]), now, now)
            for i in range(count)]
    store = jobs_store(ws)
    store.executemany("INSERT INTO jobs (id, name, spec, state, target, priority, gpus, submitted_at, updated_at)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    scheduler = Scheduler(ws)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        _, requests = scheduler.pending(time.time())
        slots, resources = scheduler.snapshot([])
        scheduler.policy.place(requests, slots, resources)
        times.append(time.perf_counter() - t)
    store.execute("DELETE FROM jobs WHERE name = 'bulk'")
    return {"read_and_place_10k_pending_from_store_ms": round(statistics.median(times) * 1000, 1)}


def drain(ws, jobs: int = 200) -> dict:
    """Queue 200 `python -c pass` jobs, start the scheduler, and time the drain against a bare pool."""
    from forgeml.jobs import JobSpec, submit
    from forgeml.jobs.queue import jobs_store

    argv = [sys.executable, "-c", "pass"]
    cores = len(os.sched_getaffinity(0))
    t = time.perf_counter()
    with ThreadPoolExecutor(cores) as pool:
        list(pool.map(lambda _: subprocess.run(argv, check=True), range(jobs)))
    pool_s = time.perf_counter() - t

    ids = [submit(JobSpec(command=argv, name="drain"), ws).id for _ in range(jobs)]
    proc = start_scheduler(ws)
    store = jobs_store(ws)
    try:
        marks = ",".join("?" * len(ids))
        while store.query(f"SELECT COUNT(*) AS n FROM jobs WHERE id IN ({marks}) AND state IN ('PENDING', 'RUNNING')",
                          ids)[0]["n"]:
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)
    rows = store.query(f"SELECT a.started_at, a.finished_at, j.state FROM job_attempts a JOIN jobs j ON j.id = a.job_id"
                       f" WHERE a.job_id IN ({marks})", ids)
    first, last = min(r["started_at"] for r in rows), max(r["finished_at"] for r in rows)
    busy = sum(r["finished_at"] - r["started_at"] for r in rows)
    return {"drain_jobs": jobs, "drain_cores": cores, "drain_s": round(last - first, 2),
            "drain_mean_concurrency": round(busy / (last - first), 2),
            "drain_succeeded": sum(r["state"] == "SUCCEEDED" for r in rows),
            "bare_pool_drain_s": round(pool_s, 2), "drain_vs_bare_pool": round((last - first) / pool_s, 2)}


def main() -> None:
    """Run every part and print one JSON line."""
    result: dict = {"benchmark": "scheduler"}
    result.update(placement_cycle())
    with tempfile.TemporaryDirectory() as tmp:
        ws = open_workspace(Path(tmp) / "ws")
        result.update(full_cycle_read(ws))
        proc = start_scheduler(ws)
        try:
            result.update(submit_latency(ws))
        finally:
            proc.terminate()
            proc.wait(10)
        result.update(drain(ws))
        ws.close()
    result["floors_met"] = {"submit_to_running_p50_lt_250ms": result["submit_to_running_p50_ms"] < 250,
                            "placement_cycle_lt_20ms": result["placement_cycle_10k_pending_8_gpus_ms"] < 20}
    finish("scheduler", result)


if __name__ == "__main__":
    main()
