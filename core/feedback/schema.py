"""The tables of outcomes and experiments, their migration set and every query on them (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from forgeml.contracts import Migration
from forgeml.errors import ConflictError, NotFoundError

SET = "experiments"


def _tables(metadata: Any) -> tuple[Any, Any]:
    """Declare the experiments and outcomes tables on a SQLAlchemy MetaData."""
    import sqlalchemy as sa

    from forgeml.sqltypes import ID

    experiments = sa.Table(
        "experiments", metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),  # running, stopped
        sa.Column("spec", sa.Text, nullable=False),  # JSON: arms, metric, window, guardrails, alpha
        sa.Column("state", sa.Text, nullable=False, server_default="{}"),  # JSON: running min of p-values
        sa.Column("decision", sa.Text),  # JSON, once stopped
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("stopped_at", sa.Double),
        sa.Index("experiments_endpoint", "endpoint", "status"),
        sqlite_autoincrement=True,
    )
    outcomes = sa.Table(
        "experiment_outcomes", metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),  # "label", or an event such as "purchase"
        sa.Column("value", sa.Double),
        sa.Column("at", sa.Double, nullable=False),  # when the outcome happened
        sa.Column("recorded_at", sa.Double, nullable=False),
        sa.Index("experiment_outcomes_request", "request_id", "name"),
        sa.Index("experiment_outcomes_name_at", "name", "at"),
        sqlite_autoincrement=True,
    )
    return experiments, outcomes


def _m001_initial(tx: Any) -> None:
    """Create the experiments and experiment_outcomes tables."""
    import sqlalchemy as sa

    from forgeml.sqltypes import create_tables

    metadata = sa.MetaData()
    _tables(metadata)
    create_tables(tx, metadata)


MIGRATIONS = [Migration(1, "m001_initial", apply=_m001_initial)]
OUTCOME_COLUMNS = ("request_id", "name", "value", "at", "recorded_at")


def store(workspace: Any) -> Any:
    """Return the metadata store with the experiments tables in place."""
    return workspace.metadata_for(SET, MIGRATIONS)


# ---------------------------------------------------------------- outcomes
def insert_outcomes(workspace: Any, rows: Sequence[Sequence[Any]]) -> int:
    """Append outcome rows (request_id, name, value, at); return how many were stored."""
    now = time.time()
    full = [(str(r), str(n), None if v is None else float(v), float(a), now) for r, n, v, a in rows]
    if not full:
        return 0
    with store(workspace).transaction() as tx:
        return int(tx.insert_rows("experiment_outcomes", OUTCOME_COLUMNS, full))


def outcomes_for(workspace: Any, names: Sequence[str], since: float | None = None) -> list[tuple[Any, ...]]:
    """Return (request_id, name, value, at) of the named outcomes that happened at or after ``since``."""
    import sqlalchemy as sa

    _, t = _tables(sa.MetaData())
    q = sa.select(t.c.request_id, t.c.name, t.c.value, t.c.at).where(t.c.name.in_(list(names)))
    if since is not None:
        q = q.where(t.c.at >= since)
    return list(store(workspace).rows(q.order_by(t.c.id)))


# ---------------------------------------------------------------- experiments
def _row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["spec"] = json.loads(row["spec"])
    out["state"] = json.loads(row["state"] or "{}")
    out["decision"] = json.loads(row["decision"]) if row["decision"] else None
    return out


def create_experiment(workspace: Any, name: str, endpoint: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Store a running experiment; ConflictError when the name is taken or the endpoint runs one already."""
    import sqlalchemy as sa

    e, _ = _tables(sa.MetaData())
    with store(workspace).transaction() as tx:
        if tx.query(sa.select(e.c.id).where(e.c.name == name)):
            raise ConflictError(f"experiment {name!r} exists already; choose another name")
        busy = tx.query(sa.select(e.c.name).where(e.c.endpoint == endpoint, e.c.status == "running"))
        if busy:
            raise ConflictError(f"endpoint {endpoint!r} runs experiment {busy[0]['name']!r}; stop it first")
        tx.execute(sa.insert(e), {"name": name, "endpoint": endpoint, "status": "running",
                                  "spec": json.dumps(spec), "state": "{}", "started_at": time.time()})
    return get_experiment(workspace, name)


def get_experiment(workspace: Any, name: str) -> dict[str, Any]:
    """Return one experiment (spec, state and decision decoded); NotFoundError names the known ones."""
    import sqlalchemy as sa

    e, _ = _tables(sa.MetaData())
    rows = store(workspace).query(sa.select(e).where(e.c.name == name))
    if not rows:
        known = [r["name"] for r in list_experiments(workspace)]
        raise NotFoundError(f"no experiment {name!r}" + (f"; known: {', '.join(known)}" if known else
                                                          "; start one with `forgeml experiment start`"))
    return _row(rows[0])


def list_experiments(workspace: Any, status: str | None = None) -> list[dict[str, Any]]:
    """Return experiments, newest first, optionally only those with a status."""
    import sqlalchemy as sa

    e, _ = _tables(sa.MetaData())
    q = sa.select(e).order_by(e.c.id.desc())
    if status is not None:
        q = q.where(e.c.status == status)
    return [_row(r) for r in store(workspace).query(q)]


def save_state(workspace: Any, name: str, state: dict[str, Any]) -> None:
    """Overwrite an experiment's analysis state (the running minimum of its always-valid p-values)."""
    import sqlalchemy as sa

    e, _ = _tables(sa.MetaData())
    store(workspace).execute(sa.update(e).where(e.c.name == name).values(state=json.dumps(state)))


def finish_experiment(workspace: Any, name: str, decision: dict[str, Any]) -> bool:
    """Mark a running experiment stopped with its decision; False when it was not running any more."""
    import sqlalchemy as sa

    e, _ = _tables(sa.MetaData())
    changed = store(workspace).execute(
        sa.update(e).where(e.c.name == name, e.c.status == "running").values(
            status="stopped", decision=json.dumps(decision, default=str), stopped_at=time.time()))
    return bool(changed)
