"""`forgeml serve --workers auto`: worker processes added and removed on queue depth, latency and GPU use.

Each worker writes what it sees (requests in flight, averaged over the last half second, and the
p99 of its recent answers) to a small JSON file in a folder shared with the supervising process.
The supervisor reads those files once a second and asks uvicorn's process manager for one worker
more (SIGTTIN's handler) or one fewer (SIGTTOU's: the worker finishes the requests it holds
before it exits), between the minimum and maximum, with a cool-down after each change.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeml.errors import ConfigError

log = logging.getLogger("forgeml.serving")

STATS_ENV = "FORGEML_SERVE_STATS"
STATE_FILE = "autoscaler.json"
STALE_S = 3.0  # a worker file older than this belongs to a worker that is gone


@dataclass
class AutoscalePolicy:
    """When to add or remove a worker ([serving.autoscale])."""

    min_workers: int = 1
    max_workers: int = 4
    target_in_flight: float = 4.0
    target_p99_ms: float = 0.0
    gpu_util_pct: float = 0.0
    up_cooldown_s: float = 5.0
    down_cooldown_s: float = 30.0
    interval_s: float = 1.0

    def validate(self) -> None:
        """Raise a one-line ConfigError when the policy cannot work."""
        if not 1 <= self.min_workers <= self.max_workers:
            raise ConfigError(f"[serving.autoscale]: need 1 <= min_workers <= max_workers, got "
                              f"{self.min_workers} and {self.max_workers}")
        if self.target_in_flight <= 0:
            raise ConfigError(f"[serving.autoscale]: target_in_flight must be positive, got {self.target_in_flight}")


@dataclass
class Signals:
    """What the workers report, summed or worst over all of them, plus the GPUs' busiest utilization."""

    workers: int
    in_flight: float
    p99_ms: float | None
    gpu_pct: float | None = None


def decide(policy: AutoscalePolicy, current: int, seen: Signals, since_change_s: float) -> tuple[int, str]:
    """Return the workers wanted now and why (the reason is empty when nothing changes)."""
    per_worker = seen.in_flight / max(current, 1)
    busy = []
    if per_worker > policy.target_in_flight:
        busy.append(f"{per_worker:.1f} requests in flight per worker > {policy.target_in_flight:g}")
    if policy.target_p99_ms > 0 and seen.p99_ms is not None and seen.p99_ms > policy.target_p99_ms:
        busy.append(f"p99 {seen.p99_ms:.1f} ms > {policy.target_p99_ms:g} ms")
    if policy.gpu_util_pct > 0 and seen.gpu_pct is not None and seen.gpu_pct > policy.gpu_util_pct:
        busy.append(f"GPU {seen.gpu_pct:.0f}% > {policy.gpu_util_pct:g}%")
    if current < policy.min_workers:
        return policy.min_workers, f"below min_workers {policy.min_workers}"
    if current > policy.max_workers:
        return policy.max_workers, f"above max_workers {policy.max_workers}"
    if busy:
        if current < policy.max_workers and since_change_s >= policy.up_cooldown_s:
            return current + 1, "; ".join(busy)
        return current, ""
    # one worker fewer must still be under half the target, so the count does not flap
    calm = seen.in_flight / max(current - 1, 1) < policy.target_in_flight / 2
    if policy.target_p99_ms > 0 and seen.p99_ms is not None:
        calm = calm and seen.p99_ms < policy.target_p99_ms / 2
    if calm and current > policy.min_workers and since_change_s >= policy.down_cooldown_s:
        return current - 1, f"{per_worker:.1f} requests in flight per worker, well under {policy.target_in_flight:g}"
    return current, ""


def read_signals(folder: Path, now: float | None = None) -> Signals:
    """Sum the live workers' reports in the folder (stale files are removed)."""
    now = time.time() if now is None else now
    in_flight, p99s, workers = 0.0, [], 0
    for path in folder.glob("worker-*.json"):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being written, or just removed
        if now - report.get("at", 0) > STALE_S:
            path.unlink(missing_ok=True)
            continue
        workers += 1
        in_flight += float(report.get("in_flight", 0.0))
        if report.get("p99_ms") is not None:
            p99s.append(float(report["p99_ms"]))
    return Signals(workers, in_flight, max(p99s) if p99s else None)


class WorkerReporter:
    """In a worker: sample the requests in flight every 0.1 s and write a report every 0.5 s."""

    def __init__(self, folder: Path, in_flight: Callable[[], int], recent_p99_ms: Callable[[], float | None]):
        self.path = folder / f"worker-{os.getpid()}.json"
        self.in_flight = in_flight
        self.recent_p99_ms = recent_p99_ms

    async def run(self) -> None:
        """Report until cancelled; the file is removed on the way out."""
        try:
            while True:
                samples = []
                for _ in range(5):
                    samples.append(self.in_flight())
                    await asyncio.sleep(0.1)
                report = {"pid": os.getpid(), "at": time.time(), "in_flight": sum(samples) / len(samples),
                          "p99_ms": self.recent_p99_ms()}
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(report))
                tmp.replace(self.path)
        finally:
            self.path.unlink(missing_ok=True)


def read_state(folder: Path) -> dict[str, Any] | None:
    """The supervisor's last decision ({workers, min, max, reason, at}), for /metrics; None before any."""
    try:
        return json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


class Autoscaler:
    """In the supervising process: a thread that reads the workers' reports and resizes the pool."""

    def __init__(self, policy: AutoscalePolicy, folder: Path, supervisor: Any, announce: Callable[[str], None],
                 gpu: Callable[[], float | None] | None = None):
        self.policy = policy
        self.folder = folder
        self.supervisor = supervisor
        self.announce = announce
        self.gpu = gpu or (lambda: None)
        self.workers = supervisor.processes_num
        self.changed_at = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="forgeml-autoscale", daemon=True)

    def start(self) -> None:
        """Start deciding once per interval."""
        self._write("started")
        self._thread.start()

    def stop(self) -> None:
        """Stop deciding."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.policy.interval_s):
            try:
                self.step()
            except Exception as e:  # a bad read must not stop the scaling for good
                log.warning("autoscale: %s: %s", type(e).__name__, e)

    def step(self) -> None:
        """Decide once and, on a change, ask uvicorn's process manager for it (in its own loop)."""
        seen = read_signals(self.folder)
        seen.gpu_pct = self.gpu()
        self.workers = self.supervisor.processes_num
        wanted, reason = decide(self.policy, self.workers, seen, time.monotonic() - self.changed_at)
        if wanted == self.workers:
            return
        sig = signal.SIGTTIN if wanted > self.workers else signal.SIGTTOU
        for _ in range(abs(wanted - self.workers)):
            self.supervisor.signal_queue.append(sig)  # handled on the supervisor's own thread
        self.announce(f"forgeml serve: autoscale {self.workers} -> {wanted} workers ({reason})")
        self.workers = wanted
        self.changed_at = time.monotonic()
        self._write(reason)

    def _write(self, reason: str) -> None:
        state = {"workers": self.workers, "min": self.policy.min_workers, "max": self.policy.max_workers,
                 "reason": reason, "at": time.time()}
        tmp = self.folder / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.folder / STATE_FILE)


def busiest_gpu(workspace: Any) -> Callable[[], float | None]:
    """A reader of the busiest GPU's utilization (percent) through the workspace's GPU inventory; None without GPUs."""
    def read() -> float | None:
        try:
            devices = workspace.gpu_inventory.devices()
        except Exception:  # no driver, no NVML, no inventory: decide on the other signals
            return None
        return max((float(d.utilization_pct) for d in devices), default=None)
    return read


def policy_from(settings: Any) -> AutoscalePolicy:
    """Build and check the policy of [serving.autoscale]."""
    policy = AutoscalePolicy(settings.min_workers, settings.max_workers, settings.target_in_flight,
                             settings.target_p99_ms, settings.gpu_util_pct, settings.up_cooldown_s,
                             settings.down_cooldown_s)
    policy.validate()
    return policy


def run_autoscaled(policy: AutoscalePolicy, options: dict[str, Any], announce: Callable[[str], None],
                   workspace: Any, balance: bool = True) -> None:
    """Run the workers under a process manager with the autoscaler beside it, until interrupted.

    With ``balance`` the parent hands each connection to the worker holding the fewest
    (forgeml.serving.balancer); otherwise uvicorn's process manager runs workers sharing the port.
    """
    import inspect
    import tempfile

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config("forgeml.serving.app:app_from_env", factory=True, workers=policy.min_workers, **options)
    with tempfile.TemporaryDirectory(prefix="forgeml-serve-") as folder:
        os.environ[STATS_ENV] = folder  # the workers inherit it
        sock = config.bind_socket()
        from forgeml.serving import balancer

        supervisor: Any
        if balance and balancer.supported():
            supervisor = balancer.Balancer(config, policy.min_workers, sock)
        elif "target" in inspect.signature(Multiprocess).parameters:  # uvicorn before 0.36 takes the target
            supervisor = Multiprocess(config, target=uvicorn.Server(config).run, sockets=[sock])
        else:
            supervisor = Multiprocess(config, sockets=[sock])
        scaler = Autoscaler(policy, Path(folder), supervisor, announce, busiest_gpu(workspace))
        scaler.start()
        try:
            supervisor.run()
        finally:
            scaler.stop()
            os.environ.pop(STATS_ENV, None)
