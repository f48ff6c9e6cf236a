"""Migration sets: numbered schema steps, never edited once released, applied when a database opens."""

from __future__ import annotations

from typing import Any

from forgeml.contracts import Migration

# The kernel's own tables; each layer (tracking, jobs, features, registry, ...) owns its own set.
CORE = "core"
def _m001_initial(tx: Any) -> None:
    """Create the kernel's audit log and key/value table."""
    import sqlalchemy as sa

    from forgeml.sqltypes import ID, create_tables

    metadata = sa.MetaData()
    sa.Table(
        "audit_log", metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
        sa.Index("audit_log_subject", "subject", "at"),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "kv", metadata,
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    create_tables(tx, metadata)


CORE_MIGRATIONS = [
    Migration(1, "m001_initial", apply=_m001_initial),
    # each audit record's place in the hash chain (forgeml.auth.audit); NULL for records written before
    Migration(2, "m002_audit_chain", sql="ALTER TABLE audit_log ADD COLUMN hash TEXT"),
]
