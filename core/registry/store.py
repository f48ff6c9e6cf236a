"""Registry persistence: every statement on the registry's tables, as SQLAlchemy Core expressions, in one place.

Each function takes ``db``: the registry's metadata store (see :func:`forgeml.registry.schema.store`)
or a transaction open on it, so a service can run several of them atomically. sqlalchemy is
imported inside the functions: ``import forgeml`` must not load it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from forgeml.registry.schema import tables

_VERSION_FIELDS = ("signature", "metrics", "params", "datasets", "feature_views", "entity_keys", "tags")


def _t(name: str) -> Any:
    return tables()[name]


# ------------------------------------------------------------------ models and versions
def add_version(tx: Any, name: str, fields: dict[str, Any], now: float) -> int:
    """Create the model row if needed and insert its next version (stage STAGING); return the version number."""
    import sqlalchemy as sa

    tx.upsert("registry_models", ("name", "description", "created_at", "updated_at"), [(name, "", now, now)],
              keys=("name",), update=("updated_at",))
    versions = _t("registry_versions")
    number = tx.query(sa.select((sa.func.coalesce(sa.func.max(versions.c.version), 0) + 1).label("v"))
                      .where(versions.c.name == name))[0]["v"]
    values = {k: json.dumps(v, default=str) if k in _VERSION_FIELDS else v for k, v in fields.items()}
    tx.execute(sa.insert(versions).values(name=name, version=number, stage="STAGING", created_at=now,
                                          stage_changed_at=now, **values))
    return int(number)


def version_numbers(db: Any, name: str) -> list[int]:
    """Return a model's version numbers, ascending (empty for an unknown model)."""
    import sqlalchemy as sa

    v = _t("registry_versions")
    return [r["version"] for r in db.query(sa.select(v.c.version).where(v.c.name == name).order_by(v.c.version))]


def model_names(db: Any) -> list[str]:
    """Return the name of every registered model."""
    import sqlalchemy as sa

    return [r["name"] for r in db.query(sa.select(_t("registry_models").c.name))]


def newest_in_stage(db: Any, name: str, stage: str) -> int | None:
    """Return the version that entered ``stage`` last (None when none is there)."""
    import sqlalchemy as sa

    v = _t("registry_versions")
    hit = db.query(sa.select(v.c.version).where(v.c.name == name, v.c.stage == stage)
                   .order_by(v.c.stage_changed_at.desc(), v.c.version.desc()).limit(1))
    return hit[0]["version"] if hit else None


def version_row(db: Any, name: str, version: int) -> dict[str, Any] | None:
    """Return one registry_versions row (JSON fields still text), or None."""
    import sqlalchemy as sa

    v = _t("registry_versions")
    rows = db.query(sa.select(v).where(v.c.name == name, v.c.version == version))
    return rows[0] if rows else None


def version_rows(db: Any, name: str) -> list[dict[str, Any]]:
    """Return every registry_versions row of a model, oldest first."""
    import sqlalchemy as sa

    v = _t("registry_versions")
    return db.query(sa.select(v).where(v.c.name == name).order_by(v.c.version))


def all_versions(db: Any, *columns: str) -> list[dict[str, Any]]:
    """Return the given columns of every version of every model, ordered by name and version."""
    import sqlalchemy as sa

    v = _t("registry_versions")
    return db.query(sa.select(*(v.c[c] for c in columns)).order_by(v.c.name, v.c.version))


def model_summaries(db: Any) -> list[dict[str, Any]]:
    """Return one row per model: name, latest, production, versions (count) and updated_at."""
    import sqlalchemy as sa

    m, v = _t("registry_models"), _t("registry_versions")
    return db.query(
        sa.select(m.c.name, sa.func.max(v.c.version).label("latest"),
                  sa.func.max(sa.case((v.c.stage == "PRODUCTION", v.c.version))).label("production"),
                  sa.func.count(v.c.version).label("versions"), m.c.updated_at)
        .select_from(m.outerjoin(v, v.c.name == m.c.name))
        .group_by(m.c.name, m.c.updated_at).order_by(m.c.name))


# ------------------------------------------------------------------ aliases
def aliases(db: Any, name: str, version: int | None = None) -> list[dict[str, Any]]:
    """Return a model's aliases (alias, version), only those of one version when given."""
    import sqlalchemy as sa

    a = _t("registry_aliases")
    statement = sa.select(a.c.alias, a.c.version).where(a.c.name == name)
    if version is not None:
        statement = statement.where(a.c.version == version)
    return db.query(statement)


def alias_version(db: Any, name: str, alias: str) -> int | None:
    """Return the version an alias points at, or None."""
    import sqlalchemy as sa

    a = _t("registry_aliases")
    hit = db.query(sa.select(a.c.version).where(a.c.name == name, a.c.alias == alias))
    return hit[0]["version"] if hit else None


def point_alias(tx: Any, name: str, alias: str, version: int, now: float) -> None:
    """Point an alias at a version, creating or moving it."""
    tx.upsert("registry_aliases", ("name", "alias", "version", "updated_at"), [(name, alias, version, now)],
              keys=("name", "alias"))


def drop_alias(tx: Any, name: str, alias: str) -> bool:
    """Remove an alias; return whether it existed."""
    import sqlalchemy as sa

    a = _t("registry_aliases")
    return tx.execute(sa.delete(a).where(a.c.name == name, a.c.alias == alias)).rowcount > 0


# ------------------------------------------------------------------ stages and production history
def production_version(db: Any, name: str) -> int | None:
    """Return the version in PRODUCTION, or None."""
    import sqlalchemy as sa

    v = _t("registry_versions")
    rows = db.query(sa.select(v.c.version).where(v.c.name == name, v.c.stage == "PRODUCTION"))
    return rows[0]["version"] if rows else None


def stage_of(db: Any, name: str, version: int) -> str:
    """Return a version's stage as stored now."""
    import sqlalchemy as sa

    v = _t("registry_versions")
    return db.query(sa.select(v.c.stage).where(v.c.name == name, v.c.version == version))[0]["stage"]


def set_stage(tx: Any, name: str, version: int, stage: str, now: float) -> None:
    """Move a version to a stage."""
    import sqlalchemy as sa

    v = _t("registry_versions")
    tx.execute(sa.update(v).where(v.c.name == name, v.c.version == version).values(stage=stage, stage_changed_at=now))


def start_production(tx: Any, name: str, version: int, now: float) -> None:
    """Open a production period for a version."""
    import sqlalchemy as sa

    tx.execute(sa.insert(_t("registry_production_history")).values(name=name, version=version, started_at=now))


def end_production(tx: Any, name: str, version: int, now: float, why: str) -> None:
    """Close a version's open production period, saying why it ended."""
    import sqlalchemy as sa

    h = _t("registry_production_history")
    tx.execute(sa.update(h).where(h.c.name == name, h.c.version == version, h.c.ended_at.is_(None))
               .values(ended_at=now, ended_by=why))


def last_replaced(tx: Any, name: str, current: int) -> dict[str, Any] | None:
    """Return the newest period (id, version) of another version that ended by being replaced, or None."""
    import sqlalchemy as sa

    h = _t("registry_production_history")
    rows = tx.query(sa.select(h.c.id, h.c.version)
                    .where(h.c.name == name, h.c.ended_by == "replaced", h.c.version != current)
                    .order_by(h.c.ended_at.desc(), h.c.id.desc()).limit(1))
    return rows[0] if rows else None


def mark_restored(tx: Any, period_id: int) -> None:
    """Mark a production period as restored by a rollback, so it is never a rollback target again."""
    import sqlalchemy as sa

    h = _t("registry_production_history")
    tx.execute(sa.update(h).where(h.c.id == period_id).values(ended_by="restored"))


def production_periods(db: Any, name: str) -> list[dict[str, Any]]:
    """Return a model's production periods (version, started_at, ended_at, ended_by), oldest first."""
    import sqlalchemy as sa

    h = _t("registry_production_history")
    return db.query(sa.select(h.c.version, h.c.started_at, h.c.ended_at, h.c.ended_by)
                    .where(h.c.name == name).order_by(h.c.started_at, h.c.id))


# ------------------------------------------------------------------ gates, approvals, evaluations
def add_gate_results(tx: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Record gate verdicts (name, version, stage, gate, passed, message, details, at)."""
    import sqlalchemy as sa

    tx.executemany(sa.insert(_t("registry_gate_results")),
                   [{**r, "passed": int(r["passed"]), "details": json.dumps(r["details"], default=str)} for r in rows])


def gate_results(db: Any, name: str, version: int) -> list[dict[str, Any]]:
    """Return a version's gate verdicts, newest first, with ``passed`` a bool and ``details`` decoded."""
    import sqlalchemy as sa

    g = _t("registry_gate_results")
    rows = db.query(sa.select(g.c.stage, g.c.gate, g.c.passed, g.c.message, g.c.details, g.c.at)
                    .where(g.c.name == name, g.c.version == version).order_by(g.c.at.desc(), g.c.id.desc()))
    for r in rows:
        r["passed"] = bool(r["passed"])
        r["details"] = json.loads(r["details"])
    return rows


def put_approval(tx: Any, name: str, version: int, reviewer: str, comment: str, at: float) -> None:
    """Record a reviewer's approval, replacing that reviewer's earlier one."""
    tx.upsert("registry_approvals", ("name", "version", "reviewer", "comment", "at"),
              [(name, version, reviewer, comment, at)], keys=("name", "version", "reviewer"))


def approvals(db: Any, name: str, version: int) -> list[dict[str, Any]]:
    """Return a version's approvals (reviewer, comment, at), oldest first."""
    import sqlalchemy as sa

    a = _t("registry_approvals")
    return db.query(sa.select(a.c.reviewer, a.c.comment, a.c.at)
                    .where(a.c.name == name, a.c.version == version).order_by(a.c.at))


def add_evaluation(tx: Any, name: str, version: int, dataset: str, target: str, task: str,
                   metrics: dict[str, Any], result: dict[str, Any], at: float) -> int:
    """Store one evaluation of a version; return its id."""
    import sqlalchemy as sa

    e = _t("registry_evaluations")
    return int(tx.execute(sa.insert(e).values(
        name=name, version=version, dataset=dataset, target=target, task=task,
        metrics=json.dumps(metrics, default=float), result=json.dumps(result, default=str), at=at,
    ).returning(e.c.id)).scalar())


def evaluations(db: Any, name: str, version: int, dataset: str | None = None) -> list[dict[str, Any]]:
    """Return a version's evaluations, newest first, with metrics and result decoded."""
    import sqlalchemy as sa

    e = _t("registry_evaluations")
    statement = sa.select(e).where(e.c.name == name, e.c.version == version)
    if dataset is not None:
        statement = statement.where(e.c.dataset == dataset)
    rows = db.query(statement.order_by(e.c.at.desc(), e.c.id.desc()))
    for r in rows:
        r["metrics"] = json.loads(r["metrics"])
        r["result"] = json.loads(r["result"])
    return rows


def evaluation_targets(db: Any) -> dict[str, str]:
    """Return each target column any evaluation used, with one dataset it was evaluated on."""
    import sqlalchemy as sa

    e = _t("registry_evaluations")
    return {r["target"]: r["dataset"] for r in db.query(
        sa.select(e.c.target, sa.func.max(e.c.dataset).label("dataset")).group_by(e.c.target))}


# ------------------------------------------------------------------ calibrators
def put_calibrator(tx: Any, name: str, version: int, method: str, digest: str, threshold: float, dataset: str,
                   report: dict[str, Any], at: float) -> None:
    """Store (or replace) a version's calibrator row."""
    tx.upsert("calibrators", ("name", "version", "method", "artifact_digest", "threshold", "dataset", "report", "at"),
              [(name, version, method, digest, threshold, dataset, json.dumps(report), at)],
              keys=("name", "version"))


def calibrator(db: Any, name: str, version: int) -> dict[str, Any] | None:
    """Return a version's calibrator row with its report decoded, or None."""
    import sqlalchemy as sa

    c = _t("calibrators")
    rows = db.query(sa.select(c.c.method, c.c.artifact_digest, c.c.threshold, c.c.dataset, c.c.report, c.c.at)
                    .where(c.c.name == name, c.c.version == version))
    if not rows:
        return None
    row = dict(rows[0])
    row["report"] = json.loads(row["report"])
    return row


def drop_calibrator(tx: Any, name: str, version: int) -> bool:
    """Remove a version's calibrator; return whether it had one."""
    import sqlalchemy as sa

    c = _t("calibrators")
    return tx.execute(sa.delete(c).where(c.c.name == name, c.c.version == version)).rowcount > 0
