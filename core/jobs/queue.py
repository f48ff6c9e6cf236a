"""The job queue in the metadata store: submit, inspect, cancel, retry and wait; persisted transitions."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeml.auth.service import require
from forgeml.client import remote
from forgeml.errors import ForgeError, JobError, NotFoundError, ValidationError, did_you_mean
from forgeml.paths import safe_component

from . import store as persisted
from .schema import MIGRATION_SET, MIGRATIONS
from .spec import JobSpec
from .wake import jobs_dir, notify_scheduler

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
STATES = (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})


@dataclass
class Job:
    """One queued job and where it stands."""

    id: str
    name: str
    state: str
    spec: JobSpec
    target: str
    priority: int
    attempts: int = 0
    failures: int = 0
    max_retries: int = 0
    preemptions: int = 0
    exit_code: int | None = None
    reason: str = ""
    run_id: str | None = None
    gpus: list[int] = field(default_factory=list)
    log_path: str | None = None
    handle: str | None = None
    stop_requested: str | None = None
    submitted_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    not_before: float = 0.0

    @property
    def done(self) -> bool:
        """Whether the job reached SUCCEEDED, FAILED or CANCELLED."""
        return self.state in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        """Return the job as plain JSON-able values."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "spec"}
        out["spec"] = self.spec.to_dict()
        return out


def _ws(ws: Any) -> Any:
    if ws is not None:
        return ws
    from forgeml.workspace import current

    return current()


def jobs_store(ws: Any) -> Any:
    """Return the metadata store with the jobs migration set applied."""
    return ws.metadata_for(MIGRATION_SET, MIGRATIONS)


def _job(row: dict[str, Any]) -> Job:
    return Job(
        id=row["id"], name=row["name"], state=row["state"], spec=JobSpec.from_json(row["spec"]),
        target=row["target"], priority=row["priority"], attempts=row["attempts"], failures=row["failures"],
        max_retries=row["max_retries"], preemptions=row["preemptions"], exit_code=row["exit_code"],
        reason=row["reason"], run_id=row["run_id"], gpus=json.loads(row["assigned_gpus"] or "[]"),
        log_path=row["log_path"], handle=row["handle"], stop_requested=row["stop_requested"],
        submitted_at=row["submitted_at"], started_at=row["started_at"], finished_at=row["finished_at"],
        not_before=row["not_before"],
    )


# ------------------------------------------------------------------ submission
def _create_run(ws: Any, spec: JobSpec, job_id: str) -> str | None:
    """Create the job's tracking run (SCHEDULED until the job attaches); None without a tracking layer."""
    try:
        from forgeml.tracking import create_run
    except ImportError:
        return None
    run = create_run(name=spec.display_name, experiment=spec.experiment, tags={"forgeml.job_id": job_id},
                     parent=spec.parent_run, job_id=job_id, params=spec.params, status="SCHEDULED", workspace=ws)
    return getattr(run, "id", None)


def _discard_run(ws: Any, run_id: str | None) -> None:
    """Remove the run created for a job that could not be queued."""
    if run_id:
        from forgeml.tracking import purge_runs

        purge_runs([run_id], workspace=ws)


def submit(spec: JobSpec, workspace: Any = None) -> Job:
    """Validate a spec, queue it as PENDING (with its tracking run) and nudge the scheduler."""
    if workspace is None and (client := remote()) is not None:
        from forgeml.jobs import remote as via_server

        return via_server.submit(client, spec)
    from .validation import check_spec

    ws = _ws(workspace)
    if not isinstance(spec, JobSpec):
        raise ValidationError(f"submit() takes a JobSpec, got {type(spec).__name__}")
    require("jobs.submit", workspace=ws, subject=f"jobs/{spec.display_name}")
    check_spec(spec, ws)
    if spec.workdir is None or not Path(spec.workdir).is_absolute():
        spec.workdir = str(spec.resolved_workdir())
    store = jobs_store(ws)
    job_id = uuid.uuid4().hex[:12]
    run_id = _create_run(ws, spec, job_id)
    now = time.time()
    try:
        with store.transaction() as tx:
            persisted.add_job(tx, {
                "id": job_id, "name": spec.display_name, "spec": spec.to_json(), "state": PENDING,
                "target": spec.target, "priority": spec.priority, "gpus": spec.gpus, "gpu_type": spec.gpu_type,
                "min_gpu_memory_mb": spec.min_gpu_memory_mb, "shared": int(spec.shared), "cpus": spec.cpus,
                "memory_mb": spec.memory_mb, "preemptible": int(spec.preemptible), "max_retries": spec.retries,
                "timeout_s": spec.timeout_s, "run_id": run_id}, now)
    except BaseException:
        _discard_run(ws, run_id)  # the job was never queued: its run must not linger as SCHEDULED
        raise
    job = get_job(job_id, ws)
    ws.plugins.on_job_state_changed(job=job, old_state=None, new_state=PENDING, workspace=ws)
    notify_scheduler(ws)
    return job


# ------------------------------------------------------------------ reading
def get_job(job_id: str, workspace: Any = None) -> Job:
    """Return a job by id or unique id prefix (at least 4 characters)."""
    if workspace is None and (client := remote()) is not None:
        from forgeml.jobs import remote as via_server

        return via_server.get_job(client, job_id)
    ws = _ws(workspace)
    store = jobs_store(ws)
    row = persisted.job_row(store, job_id)
    rows = [row] if row is not None else []
    if not rows and len(job_id) >= 4:
        rows = persisted.jobs_with_prefix(store, job_id)
        if len(rows) > 1:
            raise NotFoundError(f"job id prefix {job_id!r} is ambiguous ({', '.join(r['id'] for r in rows)}); "
                                f"type more characters")
    if not rows:
        recent = persisted.recent_ids(store)
        raise NotFoundError(f"no job {job_id!r}{did_you_mean(job_id, recent)}; list jobs with `forgeml jobs ls`")
    return _job(rows[0])


def list_jobs(state: str | None = None, target: str | None = None, limit: int | None = None,
              workspace: Any = None) -> list[Job]:
    """Return jobs, newest first, optionally filtered by state and target."""
    ws = _ws(workspace)
    if state and state.upper() not in STATES:
        raise ValidationError(f"unknown job state {state!r}{did_you_mean(state.upper(), STATES)}; "
                              f"choices: {', '.join(STATES)}")
    return [_job(r) for r in persisted.job_rows(jobs_store(ws), state.upper() if state else None, target, limit)]


def job_events(job_id: str, workspace: Any = None) -> list[dict[str, Any]]:
    """Return a job's state transitions, oldest first."""
    ws = _ws(workspace)
    job = get_job(job_id, ws)
    return persisted.events(jobs_store(ws), job.id)


def job_events_since(job_id: str, after: int = 0, workspace: Any = None) -> list[dict[str, Any]]:
    """Return a job's state transitions recorded after event id `after`, oldest first, with their ids."""
    ws = _ws(workspace)
    job = get_job(job_id, ws)
    return persisted.events(jobs_store(ws), job.id, after=int(after))


def job_attempts(job_id: str, workspace: Any = None) -> list[dict[str, Any]]:
    """Return a job's attempts: start, end, exit code, outcome, GPUs and log file."""
    ws = _ws(workspace)
    job = get_job(job_id, ws)
    rows = persisted.attempt_rows(jobs_store(ws), job.id)
    for r in rows:
        r["gpus"] = json.loads(r["gpus"] or "[]")
    return rows


# ------------------------------------------------------------------ transitions
def transition(ws: Any, job_id: str, new_state: str, expect: tuple[str, ...], reason: str = "",
               **columns: Any) -> Job | None:
    """Move a job to new_state if it is in one of expect; commit, then fire on_job_state_changed.

    Returns the updated job, or None when the job was no longer in an expected state (a concurrent
    change won). Extra keyword arguments set columns of the jobs row in the same transaction.
    """
    store = jobs_store(ws)
    now = time.time()
    with store.transaction() as tx:
        row = persisted.job_row(tx, job_id, ("state",))
        if row is None or row["state"] not in expect:
            return None
        old = row["state"]
        columns.update(state=new_state, reason=reason, updated_at=now)
        if new_state in TERMINAL:
            columns.setdefault("finished_at", now)
        persisted.update_job(tx, job_id, columns)
        if old != new_state:
            persisted.add_event(tx, job_id, now, old, new_state, reason)
    job = get_job(job_id, ws)
    if old != new_state:
        ws.plugins.on_job_state_changed(job=job, old_state=old, new_state=new_state, workspace=ws)
    return job


def cancel(job_id: str, workspace: Any = None, reason: str = "cancelled by user") -> Job:
    """Cancel a job: a PENDING one now, a RUNNING one by asking the scheduler to stop it."""
    if workspace is None and (client := remote()) is not None:
        from forgeml.jobs import remote as via_server

        return via_server.cancel(client, job_id)
    ws = _ws(workspace)
    job = get_job(job_id, ws)
    require("jobs.cancel", workspace=ws, subject=f"jobs/{job.id}")
    if job.state == CANCELLED:
        return job
    if job.state in TERMINAL:
        raise JobError(f"job {job.id} already {job.state}; nothing to cancel")
    if job.state == PENDING:
        done = transition(ws, job.id, CANCELLED, (PENDING,), reason)
        if done is not None:
            from .supervision import finish_run

            finish_run(ws, done.run_id, CANCELLED)  # the run never started: it ends KILLED, not SCHEDULED
            return done
    persisted.request_stop(jobs_store(ws), job.id, "cancel", now=time.time())
    notify_scheduler(ws)
    return get_job(job.id, ws)


def retry(job_id: str, workspace: Any = None) -> Job:
    """Queue a FAILED or CANCELLED job again with a fresh retry budget (its checkpoints are kept)."""
    ws = _ws(workspace)
    job = get_job(job_id, ws)
    require("jobs.cancel", workspace=ws, subject=f"jobs/{job.id}")
    if job.state not in (FAILED, CANCELLED):
        raise JobError(f"job {job.id} is {job.state}; only FAILED or CANCELLED jobs can be retried")
    done = transition(ws, job.id, PENDING, (FAILED, CANCELLED), "retried by user", failures=0, not_before=0,
                      exit_code=None, finished_at=None, stop_requested=None, stop_sent_at=None,
                      handle=None, assigned_gpus="[]", assigned_cpus="[]")
    notify_scheduler(ws)
    return done or get_job(job.id, ws)


def wait(job_id: str, timeout: float | None = None, workspace: Any = None, poll_s: float = 0.1) -> Job:
    """Block until the job reaches a final state and return it; JobError after timeout seconds."""
    ws = _ws(workspace)
    job = get_job(job_id, ws)
    deadline = None if timeout is None else time.monotonic() + timeout
    while not job.done:
        if deadline is not None and time.monotonic() > deadline:
            raise JobError(f"job {job.id} is still {job.state} after {timeout:g}s "
                           f"(is `forgeml scheduler` running?)")
        time.sleep(poll_s)
        job = get_job(job.id, ws)
    return job


# ------------------------------------------------------------------ logs and files
def job_dir(ws: Any, job_id: str) -> Path:
    """Return (creating it) the folder with a job's logs and checkpoints."""
    path = jobs_dir(ws) / safe_component(job_id, "job id")
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoint_dir_for(ws: Any, job_id: str) -> Path:
    """Return (creating it) the job's FORGEML_CHECKPOINT_DIR, shared by all its attempts."""
    path = job_dir(ws, job_id) / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_logs(job_id: str, attempt: int | None = None, offset: int = 0, workspace: Any = None) -> tuple[str, int]:
    """Return an attempt's log text from byte offset (default: the latest attempt) and the new offset."""
    ws = _ws(workspace)
    job = get_job(job_id, ws)
    attempts = job_attempts(job.id, ws)
    if not attempts:
        return "", offset
    row = attempts[-1] if attempt is None else next((a for a in attempts if a["attempt"] == attempt), None)
    if row is None:
        raise NotFoundError(f"job {job.id} has no attempt {attempt}; it has {len(attempts)}")
    if row["handle"] and not ws.executor(job.target).beside_workspace:
        return ws.executor(job.target).logs(row["handle"], offset)
    path = Path(row["log_path"] or "")
    if not path.is_file():
        return "", offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    return data.decode(errors="replace"), offset + len(data)


def follow_logs(job_id: str, workspace: Any = None, poll_s: float = 0.2) -> Iterator[str]:
    """Yield log text as it is written, across attempts, until the job reaches a final state."""
    ws = _ws(workspace)
    attempt, offset = None, 0
    while True:
        job = get_job(job_id, ws)
        if job.attempts and attempt != job.attempts:
            if attempt is not None:
                text, _ = read_logs(job.id, attempt, offset, ws)
                if text:
                    yield text
            attempt, offset = job.attempts, 0
            if job.attempts > 1:
                yield f"--- attempt {job.attempts} ---\n"
        if attempt is not None:
            try:
                text, offset = read_logs(job.id, attempt, offset, ws)
            except ForgeError:
                text = ""
            if text:
                yield text
        if job.done:
            return
        time.sleep(poll_s)
