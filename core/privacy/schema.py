"""The privacy layer's persistence: erasure records, in portable SQL.

A record names the subject only by its keyed pseudonym (or a plain sha256 when no key is set), so the
record of a forgotten person does not itself keep the person's key.
"""

from __future__ import annotations

import json
import time
from typing import Any

from forgeml.contracts import Migration

MIGRATION_SET = "privacy"


def _m001_initial(tx: Any) -> None:
    """Create the erasure records table."""
    import sqlalchemy as sa

    from forgeml.sqltypes import create_tables

    metadata = sa.MetaData()
    sa.Table(
        "privacy_erasures", metadata,
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("subject_column", sa.Text, nullable=False),
        sa.Column("subject_token", sa.Text, nullable=False),
        sa.Column("holdings", sa.Text, nullable=False),
        sa.Column("models", sa.Text, nullable=False, server_default="[]"),
        sa.Index("privacy_erasures_token", "subject_token"),
    )
    create_tables(tx, metadata)


MIGRATIONS = [
    Migration(1, "m001_initial", apply=_m001_initial),
]


def privacy_db(workspace: Any) -> Any:
    """Return the metadata store with the privacy tables migrated."""
    return workspace.metadata_for(MIGRATION_SET, MIGRATIONS)


def insert_erasure(workspace: Any, erasure: str, actor: str, column: str, token: str,
                   holdings: list[dict[str, Any]], models: list[str]) -> None:
    """Record one erasure and what it removed."""
    with privacy_db(workspace).transaction() as tx:
        tx.execute("INSERT INTO privacy_erasures (id, at, actor, subject_column, subject_token, holdings, models)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (erasure, time.time(), actor, column, token, json.dumps(holdings), json.dumps(models)))


def erasure_rows(workspace: Any, token: str | None = None) -> list[dict[str, Any]]:
    """Return erasure records, newest first (of one subject pseudonym when given)."""
    sql = "SELECT * FROM privacy_erasures"
    params: tuple[Any, ...] = ()
    if token is not None:
        sql, params = sql + " WHERE subject_token = ?", (token,)
    rows = privacy_db(workspace).query(sql + " ORDER BY at DESC", params)
    for r in rows:
        r["holdings"] = json.loads(r["holdings"])
        r["models"] = json.loads(r["models"])
    return rows


RETENTION_KEY = "privacy.retention.last"


def save_retention_run(workspace: Any, run: dict[str, Any]) -> None:
    """Keep the latest retention run (time, trigger, counts or error) for the schedule and its status."""
    with privacy_db(workspace).transaction() as tx:
        tx.execute("INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?)"
                   " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                   (RETENTION_KEY, json.dumps(run), time.time()))


def last_retention_run(workspace: Any) -> dict[str, Any] | None:
    """Return the latest retention run, or None before the first."""
    rows = privacy_db(workspace).query("SELECT value FROM kv WHERE key = ?", (RETENTION_KEY,))
    return json.loads(rows[0]["value"]) if rows else None
