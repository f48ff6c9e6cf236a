"""Feature-registry persistence: every statement on the features tables, as SQLAlchemy Core expressions.

``db`` is the layer's metadata store (``FeatureRegistry.store``) or a transaction open on it; a
function given ``tx`` runs inside the caller's transaction. Feature data itself lives in the offline,
online and vector stores, not here. sqlalchemy is imported inside the functions: ``import forgeml``
must not load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from forgeml.features.schema import tables

LINEAGE_COLUMNS = ("src_kind", "src", "dst_kind", "dst", "created_at")


def _objects() -> Any:
    return tables()["features_objects"]


# ------------------------------------------------------------------ definitions
def latest_object(db: Any, kind: str, name: str, version: int | None = None) -> dict[str, Any] | None:
    """Return the newest version's row (version, spec, fingerprint) of an object, or that version's; None if absent."""
    import sqlalchemy as sa

    o = _objects()
    statement = sa.select(o.c.version, o.c.spec, o.c.fingerprint).where(o.c.kind == kind, o.c.name == name)
    if version is not None:
        statement = statement.where(o.c.version == version)
    rows = db.query(statement.order_by(o.c.version.desc()).limit(1))
    return rows[0] if rows else None


def add_object(tx: Any, kind: str, name: str, version: int, spec: str, digest: str, now: float) -> None:
    """Insert a version of a definition (its JSON spec and fingerprint)."""
    import sqlalchemy as sa

    tx.execute(sa.insert(_objects()).values(kind=kind, name=name, version=version, spec=spec, fingerprint=digest,
                                            created_at=now, updated_at=now))


def update_object(tx: Any, kind: str, name: str, version: int, spec: str, digest: str, now: float) -> None:
    """Overwrite a version's spec in place (a compatible change)."""
    import sqlalchemy as sa

    o = _objects()
    tx.execute(sa.update(o).where(o.c.kind == kind, o.c.name == name, o.c.version == version)
               .values(spec=spec, fingerprint=digest, updated_at=now))


def names(db: Any, kind: str) -> list[str]:
    """Return the names of every object of a kind, sorted."""
    import sqlalchemy as sa

    o = _objects()
    return [r["name"] for r in db.query(sa.select(o.c.name).where(o.c.kind == kind).distinct().order_by(o.c.name))]


def latest_objects(db: Any, kind: str | None = None) -> list[dict[str, Any]]:
    """Return the newest version of every object (kind, name, version, spec, updated_at), by kind and name."""
    import sqlalchemy as sa

    o = _objects()
    newer = o.alias("l")
    newest = (sa.select(sa.func.max(newer.c.version)).where(newer.c.kind == o.c.kind, newer.c.name == o.c.name)
              .scalar_subquery())
    statement = sa.select(o.c.kind, o.c.name, o.c.version, o.c.spec, o.c.updated_at).where(o.c.version == newest)
    if kind is not None:
        statement = statement.where(o.c.kind == kind)
    return db.query(statement.order_by(o.c.kind, o.c.name))


def versions(db: Any, kind: str, name: str) -> list[int]:
    """Return every version number of an object, ascending."""
    import sqlalchemy as sa

    o = _objects()
    return [r["version"] for r in db.query(sa.select(o.c.version).where(o.c.kind == kind, o.c.name == name)
                                           .order_by(o.c.version))]


def generation(db: Any) -> float:
    """Return a value that changes whenever any definition changes: the newest update time plus the row count."""
    import sqlalchemy as sa

    o = _objects()
    row = db.query(sa.select(sa.func.max(o.c.updated_at).label("at"), sa.func.count().label("n")).select_from(o))[0]
    return (row["at"] or 0.0) + row["n"]


# ------------------------------------------------------------------ lineage
def add_lineage(tx: Any, edges: Sequence[tuple[str, str, str, str]], now: float) -> None:
    """Record edges (src_kind, src, dst_kind, dst); edges already recorded are left as they are."""
    tx.insert_or_ignore("features_lineage", LINEAGE_COLUMNS, [(*edge, now) for edge in edges])


def reachable_edges(db: Any, kind: str, name: str, upstream: bool) -> list[dict[str, Any]]:
    """Return every lineage edge upstream (or downstream) of a node, transitively."""
    import sqlalchemy as sa

    lineage = tables()["features_lineage"]
    near, far = ("dst", "src") if upstream else ("src", "dst")
    reach = sa.select(sa.literal(kind, sa.Text).label("k"), sa.literal(name, sa.Text).label("n")).cte(
        "reach", recursive=True)
    step = lineage.alias("l")
    reach = reach.union(sa.select(step.c[f"{far}_kind"], step.c[far]).select_from(
        step.join(reach, sa.and_(step.c[f"{near}_kind"] == reach.c.k, step.c[near] == reach.c.n))))
    edge = lineage.alias("e")
    return db.query(
        sa.select(edge.c.src_kind, edge.c.src, edge.c.dst_kind, edge.c.dst).distinct()
        .select_from(edge.join(reach, sa.and_(edge.c[f"{near}_kind"] == reach.c.k, edge.c[near] == reach.c.n)))
        .order_by(edge.c.src_kind, edge.c.src, edge.c.dst_kind, edge.c.dst))


# ------------------------------------------------------------------ write bookkeeping
def view_state(db: Any, view: str) -> dict[str, Any] | None:
    """Return a view's bookkeeping row (watermark, newest event, row counts), or None."""
    import sqlalchemy as sa

    s = tables()["features_state"]
    rows = db.query(sa.select(s).where(s.c.view == view))
    return rows[0] if rows else None


def all_view_states(db: Any) -> dict[str, dict[str, Any]]:
    """Return every view's bookkeeping row, by view name."""
    import sqlalchemy as sa

    return {r["view"]: r for r in db.query(sa.select(tables()["features_state"]))}


def bump_view_state(db: Any, view: str, newest_us: int | None, pushed: int, materialized: int,
                    watermark_us: int | None, at: float) -> bool:
    """Add a write to a view's bookkeeping row in one statement; return False when the view has no row yet.

    One UPDATE with the combining done in SQL: no read before it, and no statement built per call,
    which matters on the push path (one bookkeeping write per push).
    """
    sets = ["last_write_at = ?", "rows_pushed = rows_pushed + ?", "rows_materialized = rows_materialized + ?"]
    params: list[Any] = [at, pushed, materialized]
    if newest_us is not None:
        sets.append("last_event_us = CASE WHEN last_event_us IS NULL OR last_event_us < ? THEN ? "
                    "ELSE last_event_us END")
        params += [newest_us, newest_us]
    if watermark_us is not None:
        sets.append("watermark_us = ?")
        params.append(watermark_us)
    return db.execute(f"UPDATE features_state SET {', '.join(sets)} WHERE view = ?", (*params, view)) > 0


def put_view_state(tx: Any, view: str, values: dict[str, Any], new: bool) -> None:
    """Insert (``new``) or overwrite a view's bookkeeping row."""
    import sqlalchemy as sa

    s = tables()["features_state"]
    if new:
        tx.execute(sa.insert(s).values(view=view, **values))
    else:
        tx.execute(sa.update(s).where(s.c.view == view).values(**values))
