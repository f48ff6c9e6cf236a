"""A workspace scheduler's side of the host-wide leases: what it tells the host and what it takes from it."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from forgeml.errors import ForgeError

from .host import Demand, HostLeases, HostPolicy, HostView, Lease, current_user, host_folder, load_policy
from .placement import GpuSlot, JobRequest

log = logging.getLogger("forgeml.jobs")


class HostSide:
    """Keeps this workspace's GPU leases on the host in step with its queue, and applies the host's answers."""

    def __init__(self, ws: Any, configured_dir: str):
        self.ws = ws
        self.workspace = str(ws.root.resolve())
        self.user = current_user()
        self.folder = host_folder(configured_dir)
        self.leases = HostLeases(self.folder)
        self.uuids: dict[int, str] = {}
        self.total = 0
        self.view: HostView | None = None
        self.ours: set[int] = set()
        self.shared: dict[str, bool] = {}

    def policy(self) -> HostPolicy:
        """The host's fair-share policy (host.toml), read each time so edits apply without restarts."""
        return load_policy(self.folder)

    def running_leases(self, running: list[dict[str, Any]], executor_of: Any) -> list[Lease]:
        """Leases for this workspace's running GPU jobs, with the process that holds each."""
        out = []
        for r in running:
            gpus = json.loads(r["assigned_gpus"] or "[]")
            if not gpus:
                continue
            pid = ctime = None
            if r["handle"]:
                try:
                    found = executor_of(r["target"]).process(r["handle"])
                except ForgeError:
                    found = None
                if found:
                    pid, ctime = found
            out.append(Lease(self.workspace, r["id"], self.user, [self.uuid(i) for i in gpus], list(gpus),
                             bool(r["shared"]), r["min_gpu_memory_mb"] or 0, bool(r["preemptible"]),
                             pid=pid, ctime=ctime, since=r["started_at"] or 0.0, marker=r.get("log_path") or ""))
        return out

    def uuid(self, index: int) -> str:
        """The GPU's identity on the host (its UUID; the index when the inventory gives none)."""
        return self.uuids.get(index) or f"gpu-{index}"

    def sync(self, running: list[dict[str, Any]], requests: list[JobRequest], executor_of: Any) -> HostView:
        """Re-assert our leases, report our GPU demand, and learn the others' leases and our allowance."""
        wanting = [r for r in requests if r.gpus and not r.shared]
        self.shared = {r.job_id: r.shared for r in requests}
        demand = None
        if wanting:
            oldest = max(r.waited_s for r in wanting)
            demand = Demand(self.user, min(self.total, sum(r.gpus for r in wanting)), time.time() - oldest, 0.0,
                            [r.job_id for r in wanting[:8]])
        held = self.running_leases(running, executor_of)
        self.ours = {lease.pid for lease in held if lease.pid}
        self.view = self.leases.sync(self.workspace, self.user, held, demand, self.total, self.policy())
        return self.view

    def apply(self, slots: list[GpuSlot], devices: list[Any]) -> None:
        """Mark GPUs other workspaces hold, and GPUs busy with processes forgeml did not start, as taken."""
        view = self.view
        if view is None:
            return
        by_uuid = {self.uuid(s.index): s for s in slots}
        owners: set[int] = set()
        for lease in view.foreign:
            if lease.pid:
                owners.add(lease.pid)
            for u in lease.gpus:
                slot = by_uuid.get(u)
                if slot is None:
                    continue
                slot.hold(lease.shared, lease.memory_mb)
        ours = self.ours
        for device in devices:
            slot = by_uuid.get(self.uuid(device.index))
            if slot is None or not device.processes:
                continue
            strangers = [p for p in device.processes if not _started_by(p, owners | ours)]
            if strangers:
                # another program (a notebook, someone's script): only jobs that allow sharing may join it
                slot.shared_jobs += 1

    def within_allowance(self, plan: list[Any]) -> list[Any]:
        """Drop exclusive GPU placements beyond what fair share lets this workspace take now (others pass)."""
        view = self.view
        if view is None:
            return plan
        left = view.allowance
        out = []
        for p in plan:
            if p.preempt or not p.gpus or self.shared.get(p.job_id):
                out.append(p)  # shared jobs pack onto GPUs already in use; they do not take one from anybody
            elif len(p.gpus) <= left:
                out.append(p)
                left -= len(p.gpus)
        return out

    def claim(self, job_id: str, gpus: list[int], shared: bool, memory_mb: int, preemptible: bool, marker: str,
              process: tuple[int, float | None] | None = None) -> str | None:
        """Take the GPUs on the host before launching (or record the job's process after); None or why not.

        marker is text the attempt's command line carries (its log path): should this scheduler die
        before it records the process, the lease stays with the process that names it.
        """
        pid, ctime = process if process else (None, None)
        lease = Lease(self.workspace, job_id, self.user, [self.uuid(i) for i in gpus], list(gpus), shared,
                      memory_mb, preemptible, pid=pid, ctime=ctime, marker=marker)
        return self.leases.claim(lease, self.policy())

    def release(self, job_id: str) -> None:
        """Give the job's GPUs back to the host."""
        try:
            self.leases.release(self.workspace, job_id)
        except ForgeError as e:
            log.warning("could not release the host lease of job %s: %s", job_id, e)


def _started_by(pid: int, sessions: set[int]) -> bool:
    """Whether a GPU process belongs to one of forgeml's jobs (each job runs in its own session)."""
    try:
        return os.getsid(pid) in sessions or pid in sessions
    except OSError:
        return True  # gone already: not a stranger
