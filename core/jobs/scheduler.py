"""The scheduler loop: one per workspace; places, launches, supervises, retries, preempts, recovers."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from forgeml.contracts import Executor, LaunchRequest
from forgeml.errors import ForgeError, JobError, PluginError

from . import queue as q
from . import store as persisted
from .host import process_naming
from .hostside import HostSide
from .placement import GpuSlot, JobRequest, Resources, RunningJob
from .plans import never_fits, plan_problems
from .supervision import TRANSIENT, backoff_delay, classify_failure, finish_run, job_environment, log_tail
from .upkeep import Upkeep
from .wake import SchedulerLock, Waker

log = logging.getLogger("forgeml.jobs")

REAP_INTERVAL_S = 30.0  # how often a scheduler looks for runs whose process was killed


class Scheduler:
    """Runs the workspace's queue: ``run_until_idle()``, ``start_in_thread()``/``stop()``, or ``serve_forever()``."""

    def __init__(self, ws: Any = None):
        if ws is None:
            from forgeml.workspace import current

            ws = current()
        self.ws = ws
        self.settings = ws.config.section("scheduler")
        self.store = q.jobs_store(ws)
        provider, policy_settings = ws.config.provider("scheduler.policy")
        self.policy = provider.build(policy_settings, ws)
        self.policy_label = f"placement policy {provider.name!r} (plugin {provider.plugin!r})"
        self._lock = SchedulerLock(ws)
        self._waker: Waker | None = None
        self._stop = threading.Event()
        self._last_reap = 0.0
        self._thread: threading.Thread | None = None
        self._started = False
        self._next_due = 0.0
        self._last_key: tuple = ()
        self._last_placement = 0.0
        self.cycles = 0
        self._executors: dict[str, Executor] = {}
        self._placed_targets: set[str] = set()
        self._request_targets: dict[str, str] = {}
        self._host: HostSide | None | bool = None  # None: not decided yet; False: host leases off
        self._host_synced = 0.0
        self._devices: list[Any] = []
        self.upkeep = Upkeep(ws)
        self._unfit: dict[str, int] = {}  # job id -> consecutive placement passes it looked impossible to fit

    # ------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Take the workspace's scheduler lock and start listening for nudges."""
        if self._started:
            return
        self._lock.acquire()
        try:
            self._waker = Waker(self.ws)
        except ForgeError:
            self._lock.release()
            raise
        self._started = True
        self._stop.clear()

    def close(self) -> None:
        """Release the lock; running jobs keep running and are adopted by the next scheduler."""
        if not self._started:
            return
        for executor in self._executors.values():
            executor.set_wakeup(None)
        self._executors.clear()
        if self._waker is not None:
            self._waker.close()
            self._waker = None
        self._lock.release()
        self._started = False

    def executor(self, target: str) -> Executor:
        """Return a target's executor, set to wake this scheduler when one of its attempts ends."""
        found = self._executors.get(target)
        if found is None:
            found = self._executors[target] = self.ws.executor(target)
            if self._waker is not None:
                found.set_wakeup(self._waker.wake)
        return found

    def _placed(self, target: str) -> bool:
        """Whether the placement policy gives this target's jobs their GPUs (False for a target that cannot open)."""
        try:
            return self.executor(target).places_gpus
        except ForgeError:
            return False

    def _wait(self, timeout: float) -> None:
        if self._waker is not None:
            self._waker.wait(timeout)
        else:
            self._stop.wait(timeout)

    def _sleep_time(self) -> float:
        poll = self.settings.poll_interval_s
        if self._next_due:
            return max(0.0, min(poll, self._next_due - time.time()))
        return poll

    def run_until_idle(self, timeout: float | None = None) -> None:
        """Run cycles until no job is PENDING or RUNNING; JobError after timeout seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        owned = not self._started
        self.open()
        try:
            while True:
                self.cycle()
                if not persisted.any_active(self.store):
                    return
                if deadline is not None and time.monotonic() > deadline:
                    raise JobError(f"the queue was not idle after {timeout:g}s")
                self._wait(self._sleep_time())
        finally:
            if owned:
                self.close()

    def serve_forever(self) -> None:
        """Run cycles until stop() is called (or the process is signalled)."""
        self.open()
        try:
            while not self._stop.is_set():
                try:
                    self.cycle()
                except ForgeError as e:  # a bad job or a flaky store must not stop the queue
                    log.error("scheduler cycle failed: %s", e)
                except Exception:  # an executor bug must not stop supervision of every other job
                    log.exception("scheduler cycle failed")
                self.upkeep.maybe_run()  # periodic work (retention...) runs beside the loop, in its own thread
                self._wait(self._sleep_time())
        finally:
            self.upkeep.join()
            self.close()

    def start_in_thread(self) -> Scheduler:
        """Take the lock now and run the loop in a daemon thread; return self."""
        self.open()
        self._thread = threading.Thread(target=self.serve_forever, name="forgeml-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop (jobs keep running) and release the lock."""
        self._stop.set()
        if self._waker is not None:
            self._waker.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            self.close()

    # ------------------------------------------------------------ one cycle
    def cycle(self) -> None:
        """Supervise running jobs, then place and launch pending ones."""
        self.cycles += 1
        now = time.time()
        running = persisted.running_rows(self.store)
        still: list[dict[str, Any]] = []
        for row in running:
            if self._supervise(row, now):
                still.append(row)
        host = self.host_side()
        if host is not None and now - self._host_synced >= 1.0 and any(r["assigned_gpus"] not in (None, "[]")
                                                                         for r in still):
            self._host_sync(host, still, [], now)  # keeps leases and honours take-back requests while idle
        if self._placement_needed(freed=len(still) < len(running), now=now):
            self._place(still, now)
        if now - self._last_reap >= REAP_INTERVAL_S:
            self._last_reap = now
            self._reap_runs()

    def _reap_runs(self) -> None:
        """Mark runs whose process was killed without ending them (kill -9) as KILLED."""
        from forgeml.tracking.liveness import reap_orphaned_runs

        try:
            for run_id in reap_orphaned_runs(self.ws):
                log.warning("run %s: its process is gone; marked KILLED", run_id)
        except ForgeError as e:
            log.error("could not check for runs whose process is gone: %s", e)

    def _placement_needed(self, freed: bool, now: float) -> bool:
        """Skip re-reading a big queue when nothing that placement depends on has changed."""
        row = persisted.pending_key(self.store)
        key = (row["n"], row["s"], row["u"])
        due = bool(self._next_due) and self._next_due <= now
        # free GPU memory and CPU load change outside our view too: look again every few seconds
        stale = now - self._last_placement > max(5.0, 10 * self.settings.poll_interval_s)
        if not (freed or due or stale or self._unfit or key != self._last_key):
            return False
        self._last_key, self._last_placement = key, now
        return row["n"] > 0 or due

    def _supervise(self, row: dict[str, Any], now: float) -> bool:
        """Poll one running attempt; return True while it still holds its resources."""
        executor = self.executor(row["target"])
        handle = row["handle"]
        if not handle and row["log_path"]:
            handle = executor.recover(row["log_path"])
            if handle:
                persisted.set_handle(self.store, row["id"], handle)
                row["handle"] = handle  # this cycle's host sync ties the lease to the adopted process
        if not handle:
            if row["log_path"] and process_naming(row["log_path"]) is not None:
                # started, but its executor cannot adopt it: it keeps its GPUs (and lease) until it ends
                return True
            self._ended(row, None, "lost", "the attempt was never started (the scheduler stopped while launching)")
            return False
        status = executor.poll(handle)
        if status.state == "running":
            self._enforce(row, executor, handle, now)
            return True
        self._ended(row, status.exit_code, status.state, status.reason)
        return False

    def _enforce(self, row: dict[str, Any], executor: Executor, handle: str, now: float) -> None:
        """Apply timeouts and stop requests (cancel, preemption) to a running attempt."""
        grace = self.settings.grace_period_s
        stop = row["stop_requested"]
        if not stop and row["timeout_s"] and row["started_at"] and now - row["started_at"] > row["timeout_s"]:
            stop = "timeout"
            persisted.request_stop(self.store, row["id"], stop)
        if not stop:
            return
        if row["stop_sent_at"] is None or (stop == "timeout" and row["stop_requested"] != "timeout"):
            executor.cancel(handle, grace)
            persisted.stop_sent(self.store, row["id"], now)
        elif now - row["stop_sent_at"] > grace + 2 * self.settings.poll_interval_s:
            # the SIGKILL timer died with an earlier scheduler: kill now
            executor.kill(handle)

    def _ended(self, row: dict[str, Any], exit_code: int | None, outcome: str, reason: str) -> None:
        """Record how an attempt ended and move the job on: success, retry, requeue, failure, cancel."""
        job_id, now, s = row["id"], time.time(), self.settings
        stop = row["stop_requested"] or ""
        persisted.end_attempt(self.store, job_id, row["attempts"], now, exit_code, outcome, reason)
        clear = dict(handle=None, assigned_gpus="[]", assigned_cpus="[]", stop_requested=None, stop_sent_at=None,
                     exit_code=exit_code)
        job: q.Job | None
        # a stop request decides first: a job that saves a checkpoint and exits 0 on SIGTERM is not done
        if stop == "cancel":
            job = q.transition(self.ws, job_id, q.CANCELLED, (q.RUNNING,), "cancelled by user", **clear)
        elif stop == "timeout":
            job = q.transition(self.ws, job_id, q.FAILED, (q.RUNNING,),
                               f"timed out after {row['timeout_s']:g}s", **clear)
        elif stop.startswith("preempt:"):
            by = stop.split(":", 1)[1]
            job = q.transition(self.ws, job_id, q.PENDING, (q.RUNNING,),
                               f"preempted by {by if by.startswith('user ') else f'job {by}'}; resumes from its latest checkpoint",
                               preemptions=self._count(job_id, "preemptions") + 1, not_before=0, **clear)
        elif outcome == "succeeded":
            job = q.transition(self.ws, job_id, q.SUCCEEDED, (q.RUNNING,), "exit code 0", **clear)
        else:
            current = q.get_job(job_id, self.ws)
            tail = log_tail(row["log_path"], s.log_tail_bytes)
            verdict = classify_failure(self.ws, s, current, exit_code, tail)
            failures = row["failures"] + 1
            what = reason or (f"exit code {exit_code}" if exit_code is not None else "lost")
            if verdict == TRANSIENT and failures <= row["max_retries"]:
                delay = backoff_delay(s, failures)
                job = q.transition(self.ws, job_id, q.PENDING, (q.RUNNING,),
                                   f"attempt {row['attempts']} failed ({what}, transient); retry {failures} of "
                                   f"{row['max_retries']} in {delay:g}s",
                                   failures=failures, not_before=now + delay, **clear)
                self._next_due = min(self._next_due or now + delay, now + delay)
            else:
                why = "permanent" if verdict != TRANSIENT else f"no retries left of {row['max_retries']}"
                job = q.transition(self.ws, job_id, q.FAILED, (q.RUNNING,), f"{what} ({why})", failures=failures,
                                   **clear)
        host = self.host_side()
        if host is not None and row.get("assigned_gpus") not in (None, "[]"):
            host.release(job_id)
        if job is not None and job.done:
            try:
                finish_run(self.ws, job.run_id, job.state)
            except ForgeError as e:
                log.warning("could not close run %s of job %s: %s", job.run_id, job_id, e)

    def _count(self, job_id: str, column: str) -> int:
        return persisted.job_row(self.store, job_id, (column,))[column]

    # ------------------------------------------------------------ placement and launch
    def _place(self, running: list[dict[str, Any]], now: float) -> None:
        remote, requests = self.pending(now)
        for r in remote:
            self._launch(r["id"], [])
        if not requests:
            return
        slots, resources = self.snapshot(running)
        requests = self._drop_unfittable(requests, slots, resources)
        host = self.host_side()
        if host is not None and any(r.gpus for r in requests):
            host.total = len(slots)
            self._host_sync(host, running, requests, now)
            host.apply(slots, self._devices)
        if not requests:
            return
        plan = self.policy.place(requests, slots, resources)
        problems = plan_problems(requests, slots, resources, plan)
        if problems:
            raise PluginError(f"{self.policy_label} returned a plan the scheduler refuses: {'; '.join(problems)}")
        if host is not None and host.view is not None:
            plan = host.within_allowance(plan)
        for p in plan:
            if p.preempt:
                self._preempt(p.preempt, p.job_id)
            else:
                self._launch(p.job_id, list(p.gpus))

    # ------------------------------------------------------------ host-wide GPU leases
    def host_side(self) -> HostSide | None:
        """This scheduler's link to the host-wide GPU leases, or None when they are off or the GPUs are not real."""
        if self._host is None:
            inventory = self.ws.gpu_inventory
            on = self.settings.host_leases and getattr(inventory, "host_wide", True)
            self._host = HostSide(self.ws, self.settings.host_dir) if on else False
        return self._host or None

    def _host_sync(self, host: HostSide, running: list[dict[str, Any]], requests: list[JobRequest], now: float) -> None:
        """Tell the host what we hold and want; stop the jobs it asks back for another user's share."""
        if not host.uuids:
            host.uuids = {d.index: d.uuid for d in (self._devices or self.ws.gpu_inventory.devices())}
            host.total = host.total or len(host.uuids)
        self._host_synced = now
        view = host.sync([r for r in running if self._placed(r["target"])], requests, self.executor)
        for job_id, user in view.preempt.items():
            self._preempt((job_id,), f"user {user} (fair share)")

    def _drop_unfittable(self, requests: list[JobRequest], slots: list[GpuSlot],
                         resources: Resources) -> list[JobRequest]:
        """Fail the jobs no placement could fit for ``unfit_cycles`` passes in a row; return the ones to place."""
        keep, unfit = [], {}
        for req in requests:
            why = never_fits(req, slots, resources)
            if why is None:
                keep.append(req)
                continue
            # an inventory can miss GPUs for a moment (a driver reset): fail only what stays impossible
            unfit[req.job_id] = seen = self._unfit.get(req.job_id, 0) + 1
            if seen >= max(1, self.settings.unfit_cycles):
                del unfit[req.job_id]
                target = self._request_targets.get(req.job_id, "?")
                q.transition(self.ws, req.job_id, q.FAILED, (q.PENDING,), f"cannot ever run on target {target!r}: {why}")
        self._unfit = unfit
        return keep

    def pending(self, now: float) -> tuple[list[dict[str, Any]], list[JobRequest]]:
        """Return the due pending jobs: rows for targets that place their own, and placement requests for the rest."""
        rows, self._next_due = persisted.due_pending(self.store, now)
        default_cpus = self.settings.default_cpus
        placed = {target: self._placed(target) for target in {r["target"] for r in rows}}
        self._placed_targets = {target for target, yes in placed.items() if yes}
        self._request_targets = {r["id"]: r["target"] for r in rows if placed[r["target"]]}
        remote = [r for r in rows if not placed[r["target"]]]
        requests = [
            JobRequest(r["id"], r["priority"], r["seq"], r["gpus"], r["gpu_type"], r["min_gpu_memory_mb"] or 0,
                       bool(r["shared"]), r["cpus"] if r["cpus"] is not None else (0.0 if r["gpus"] else default_cpus),
                       r["memory_mb"] or 0, now - r["submitted_at"])
            for r in rows if placed[r["target"]]
        ]
        return remote, requests

    def snapshot(self, running: list[dict[str, Any]]) -> tuple[list[GpuSlot], Resources]:
        """Return the GPUs and CPU/memory picture the policy sees, given the running jobs' rows."""
        devices = self._devices = self.ws.gpu_inventory.devices()
        slots = {d.index: GpuSlot(d.index, d.name, d.memory_total_mb, d.memory_free_mb) for d in devices}
        placed = [r for r in running if self._placed(r["target"])]
        cpus_total, memory_total = self._capacity(self._placed_targets | {r["target"] for r in placed})
        held: list[RunningJob] = []
        cpus_used, memory_used = 0.0, 0
        for r in placed:
            gpus = tuple(json.loads(r["assigned_gpus"] or "[]"))
            cpus = r["cpus"] if r["cpus"] is not None else (0.0 if r["gpus"] else self.settings.default_cpus)
            job = RunningJob(r["id"], r["priority"], gpus, bool(r["shared"]), r["min_gpu_memory_mb"] or 0, cpus,
                             r["memory_mb"] or 0, bool(r["preemptible"]), r["started_at"] or 0.0,
                             bool(r["stop_requested"]))
            held.append(job)
            cpus_used += cpus
            memory_used += job.memory_mb
            for i in gpus:
                slot = slots.get(i)
                if slot is None:
                    continue
                slot.hold(job.shared, job.gpu_memory_mb)
        resources = Resources(cpus_total, cpus_total - cpus_used, memory_total, memory_total - memory_used, held)
        return list(slots.values()), resources

    def _capacity(self, targets: set[str]) -> tuple[float, int]:
        """The CPUs and memory of the machine the placed targets share: the least any of them offers."""
        found = [c for c in (self.executor(t).capacity() for t in sorted(targets)) if c is not None]
        if not found:
            return 0.0, 0
        return min(c.cpus for c in found), min(c.memory_mb for c in found)

    def _preempt(self, victims: tuple[str, ...], for_job: str) -> None:
        for victim in victims:
            if not persisted.request_preemption(self.store, victim, for_job):
                continue
            row = persisted.job_row(self.store, victim, ("target", "handle"))
            if row["handle"]:
                self.executor(row["target"]).cancel(row["handle"], self.settings.grace_period_s)
                persisted.stop_sent(self.store, victim, time.time())
            log.info("preempting job %s for job %s", victim, for_job)

    def _launch(self, job_id: str, gpus: list[int]) -> None:
        """Mark the job RUNNING, start its attempt, record the handle, then announce the transition."""
        job = q.get_job(job_id, self.ws)
        if job.state != q.PENDING:
            return
        attempt = job.attempts + 1
        log_path = str(q.job_dir(self.ws, job.id) / f"attempt-{attempt}.log")
        host = self.host_side() if gpus else None
        if host is not None:
            why = host.claim(job.id, gpus, job.spec.shared, job.spec.min_gpu_memory_mb or 0, job.spec.preemptible,
                             marker=log_path)
            if why is not None:
                log.info("job %s waits: %s", job.id, why)
                self._last_placement = 0.0  # look again next cycle
                return
        now = time.time()
        with self.store.transaction() as tx:
            if not persisted.start_attempt(tx, job.id, attempt, json.dumps(gpus), log_path, now):
                if host is not None:
                    host.release(job.id)
                return  # cancelled between placement and launch
        try:
            executor = self.executor(job.target)
            request = LaunchRequest(
                job_id=job.id, attempt=attempt, argv=job.spec.argv(executor.python()),
                env=job_environment(self.ws, job, attempt, gpus, beside=executor.beside_workspace,
                                    pin_gpus=executor.places_gpus),
                workdir=job.spec.workdir or str(self.ws.root), log_path=log_path, gpus=gpus, cpus=job.spec.cpus,
                memory_mb=job.spec.memory_mb, timeout_s=job.spec.timeout_s, spec=job.spec,
                secrets=tuple(sorted(self.ws.config.secret_variables() & set(os.environ))),
            )
            handle = executor.launch(request)
        except ForgeError as e:
            row = dict(id=job.id, stop_requested=None, attempts=attempt, failures=job.failures, assigned_gpus=json.dumps(gpus),
                       max_retries=job.max_retries, log_path=log_path, timeout_s=None)
            self._ended(row, None, "failed", f"launch failed: {e}")
            return
        persisted.set_handle(self.store, job.id, handle, attempt)
        if host is not None:
            try:
                process = executor.process(handle)
                if process:  # the lease now lives as long as the job's process, not this scheduler
                    host.claim(job.id, gpus, job.spec.shared, job.spec.min_gpu_memory_mb or 0, job.spec.preemptible,
                               log_path, process)
            except ForgeError as e:
                log.warning("job %s: could not record its process on the host lease: %s", job.id, e)
        started = q.get_job(job.id, self.ws)
        self.ws.plugins.on_job_state_changed(job=started, old_state=q.PENDING, new_state=q.RUNNING, workspace=self.ws)
