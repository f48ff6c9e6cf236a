"""Jobs persistence: every statement on the queue's tables, as SQLAlchemy Core expressions, in one place.

``db`` is the jobs layer's metadata store (:func:`forgeml.jobs.queue.jobs_store`): a function given
one runs its statement in a transaction of its own. ``tx`` is a transaction the caller holds open,
so several functions commit together. sqlalchemy is imported inside the functions: ``import forgeml``
must not load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from forgeml.jobs.schema import tables

RUNNING_COLUMNS = ("id", "target", "priority", "gpus", "shared", "min_gpu_memory_mb", "cpus", "memory_mb",
                   "preemptible", "timeout_s", "handle", "log_path", "assigned_gpus", "stop_requested",
                   "stop_sent_at", "started_at", "attempts", "failures", "max_retries", "run_id")
PENDING_COLUMNS = ("id", "seq", "target", "priority", "gpus", "gpu_type", "min_gpu_memory_mb", "shared", "cpus",
                   "memory_mb", "submitted_at")


def _jobs() -> Any:
    return tables()["jobs"]


# ------------------------------------------------------------------ the queue
def add_job(tx: Any, values: dict[str, Any], now: float) -> None:
    """Insert a job row (``values`` names its columns) and its first event, PENDING."""
    import sqlalchemy as sa

    tx.execute(sa.insert(_jobs()).values(submitted_at=now, updated_at=now, **values))
    add_event(tx, values["id"], now, None, values["state"], "submitted")


def add_event(tx: Any, job_id: str, at: float, old_state: str | None, new_state: str, reason: str) -> None:
    """Record one state transition of a job."""
    import sqlalchemy as sa

    tx.execute(sa.insert(tables()["job_events"]).values(job_id=job_id, at=at, old_state=old_state,
                                                         new_state=new_state, reason=reason))


def job_row(db: Any, job_id: str, columns: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Return a job's row (every column, or the ones named), or None."""
    import sqlalchemy as sa

    j = _jobs()
    chosen = [j.c[c] for c in columns] if columns else [j]
    rows = db.query(sa.select(*chosen).where(j.c.id == job_id))
    return rows[0] if rows else None


def jobs_with_prefix(db: Any, prefix: str, limit: int = 3) -> list[dict[str, Any]]:
    """Return up to ``limit`` job rows whose id starts with ``prefix``, oldest first."""
    import sqlalchemy as sa

    j = _jobs()
    return db.query(sa.select(j).where(j.c.id.startswith(prefix, autoescape=True)).order_by(j.c.seq).limit(limit))


def recent_ids(db: Any, limit: int = 50) -> list[str]:
    """Return the ids of the newest jobs."""
    import sqlalchemy as sa

    j = _jobs()
    return [r["id"] for r in db.query(sa.select(j.c.id).order_by(j.c.seq.desc()).limit(limit))]


def job_rows(db: Any, state: str | None = None, target: str | None = None,
             limit: int | None = None) -> list[dict[str, Any]]:
    """Return job rows, newest first, filtered by state and target."""
    import sqlalchemy as sa

    j = _jobs()
    statement = sa.select(j).order_by(j.c.seq.desc())
    if state:
        statement = statement.where(j.c.state == state)
    if target:
        statement = statement.where(j.c.target == target)
    if limit:
        statement = statement.limit(int(limit))
    return db.query(statement)


def states(db: Any, job_ids: Sequence[str]) -> dict[str, str]:
    """Return the state of each of the given jobs that exists."""
    import sqlalchemy as sa

    j = _jobs()
    return {r["id"]: r["state"] for r in db.query(sa.select(j.c.id, j.c.state).where(j.c.id.in_(list(job_ids))))}


def events(db: Any, job_id: str, after: int | None = None) -> list[dict[str, Any]]:
    """Return a job's transitions, oldest first; with ``after``, only those recorded after that event id (ids included)."""
    import sqlalchemy as sa

    e = tables()["job_events"]
    shown = [e.c.at, e.c.old_state, e.c.new_state, e.c.reason]
    statement = sa.select(*shown).where(e.c.job_id == job_id)
    if after is not None:
        statement = sa.select(e.c.id, *shown).where(e.c.job_id == job_id, e.c.id > int(after))
    return db.query(statement.order_by(e.c.id))


def attempt_rows(db: Any, job_id: str) -> list[dict[str, Any]]:
    """Return a job's attempt rows, in order."""
    import sqlalchemy as sa

    a = tables()["job_attempts"]
    return db.query(sa.select(a).where(a.c.job_id == job_id).order_by(a.c.attempt))


def update_job(tx: Any, job_id: str, columns: dict[str, Any]) -> None:
    """Set columns of a job's row."""
    import sqlalchemy as sa

    j = _jobs()
    tx.execute(sa.update(j).where(j.c.id == job_id).values(**columns))


def request_stop(db: Any, job_id: str, why: str, now: float | None = None) -> int:
    """Ask a RUNNING job that has no stop request yet to stop (``cancel``, ``timeout``, ``preempt:...``).

    With ``now`` the request replaces an earlier one and marks the job updated (a user's cancel);
    returns how many rows changed.
    """
    import sqlalchemy as sa

    j = _jobs()
    statement = sa.update(j).where(j.c.id == job_id)
    if now is not None:
        statement = statement.where(j.c.state == "RUNNING").values(stop_requested=why, stop_sent_at=None,
                                                                    updated_at=now)
    else:
        statement = statement.where(j.c.stop_requested.is_(None)).values(stop_requested=why)
    return int(db.execute(statement))


def request_preemption(db: Any, job_id: str, for_job: str) -> int:
    """Ask a RUNNING job without a stop request to stop for ``for_job``; return 1 when it was asked."""
    import sqlalchemy as sa

    j = _jobs()
    return int(db.execute(sa.update(j).where(j.c.id == job_id, j.c.state == "RUNNING",
                                             j.c.stop_requested.is_(None))
                          .values(stop_requested=f"preempt:{for_job}", stop_sent_at=None)))


def stop_sent(db: Any, job_id: str, at: float) -> None:
    """Record when the stop signal went to a job's attempt."""
    import sqlalchemy as sa

    j = _jobs()
    db.execute(sa.update(j).where(j.c.id == job_id).values(stop_sent_at=at))


# ------------------------------------------------------------------ the scheduler's reads
def any_active(db: Any) -> bool:
    """Return whether any job is PENDING or RUNNING."""
    import sqlalchemy as sa

    j = _jobs()
    return bool(db.query(sa.select(sa.literal(1).label("one")).select_from(j)
                         .where(j.c.state.in_(["PENDING", "RUNNING"])).limit(1)))


def running_rows(db: Any) -> list[dict[str, Any]]:
    """Return what supervision needs of every RUNNING job."""
    import sqlalchemy as sa

    j = _jobs()
    return db.query(sa.select(*(j.c[c] for c in RUNNING_COLUMNS)).where(j.c.state == "RUNNING"))


def pending_key(db: Any) -> dict[str, Any]:
    """Return n, s, u: how many jobs are PENDING, the newest seq and the sum of their update times."""
    import sqlalchemy as sa

    j = _jobs()
    return db.query(sa.select(sa.func.count().label("n"), sa.func.max(j.c.seq).label("s"),
                              sa.func.coalesce(sa.func.sum(j.c.updated_at), 0).label("u"))
                    .where(j.c.state == "PENDING"))[0]


def due_pending(db: Any, now: float) -> tuple[list[dict[str, Any]], float]:
    """Return the PENDING jobs due by ``now`` (highest priority, then oldest) and when the next one falls due (0: none)."""
    import sqlalchemy as sa

    j = _jobs()
    rows = db.query(sa.select(*(j.c[c] for c in PENDING_COLUMNS))
                    .where(j.c.state == "PENDING", j.c.not_before <= now)
                    .order_by(j.c.priority.desc(), j.c.seq))
    later = db.query(sa.select(sa.func.min(j.c.not_before).label("due"))
                     .where(j.c.state == "PENDING", j.c.not_before > now))
    return rows, later[0]["due"] or 0.0


# ------------------------------------------------------------------ attempts
def start_attempt(tx: Any, job_id: str, attempt: int, gpus: str, log_path: str, now: float) -> bool:
    """Move a PENDING job to RUNNING as attempt ``attempt`` and record the attempt; False when it was no longer PENDING."""
    import sqlalchemy as sa

    j = _jobs()
    changed = tx.execute(sa.update(j).where(j.c.id == job_id, j.c.state == "PENDING").values(
        state="RUNNING", attempts=attempt, assigned_gpus=gpus, log_path=log_path, started_at=now, handle=None,
        stop_requested=None, stop_sent_at=None, reason=f"attempt {attempt}", updated_at=now)).rowcount
    if not changed:
        return False
    add_event(tx, job_id, now, "PENDING", "RUNNING", f"attempt {attempt}")
    tx.upsert("job_attempts", ("job_id", "attempt", "started_at", "gpus", "log_path"),
              [(job_id, attempt, now, gpus, log_path)], keys=("job_id", "attempt"))
    return True


def set_handle(db: Any, job_id: str, handle: str, attempt: int | None = None) -> None:
    """Record the executor's handle of a job's attempt (on the attempt's row too when ``attempt`` is given)."""
    import sqlalchemy as sa

    j, a = _jobs(), tables()["job_attempts"]
    with db.transaction() as tx:
        tx.execute(sa.update(j).where(j.c.id == job_id).values(handle=handle))
        if attempt is not None:
            tx.execute(sa.update(a).where(a.c.job_id == job_id, a.c.attempt == attempt).values(handle=handle))


def end_attempt(db: Any, job_id: str, attempt: int, now: float, exit_code: int | None, outcome: str,
                reason: str) -> None:
    """Record how an attempt ended."""
    import sqlalchemy as sa

    a = tables()["job_attempts"]
    db.execute(sa.update(a).where(a.c.job_id == job_id, a.c.attempt == attempt)
               .values(finished_at=now, exit_code=exit_code, outcome=outcome, reason=reason))
