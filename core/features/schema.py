"""The feature registry's tables: the migration set "features" in the metadata store.

The tables are declared once with ``sqlalchemy.Table``; m001 creates exactly these shapes. A later
migration that alters a table must give m001 its own copy of the shape m001 created.
"""

from __future__ import annotations

from typing import Any

from forgeml.contracts import Migration, creating, declared_tables

MIGRATION_SET = "features"


def declare(metadata: Any) -> Any:
    """Declare the features tables on a ``sqlalchemy.MetaData`` and return it."""
    import sqlalchemy as sa

    sa.Table(
        "features_objects", metadata,
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("kind", "name", "version"),
    )
    sa.Table(
        "features_lineage", metadata,
        sa.Column("src_kind", sa.Text, nullable=False),
        sa.Column("src", sa.Text, nullable=False),
        sa.Column("dst_kind", sa.Text, nullable=False),
        sa.Column("dst", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("src_kind", "src", "dst_kind", "dst"),
        sa.Index("features_lineage_dst", "dst_kind", "dst"),
    )
    sa.Table(
        "features_state", metadata,
        sa.Column("view", sa.Text, primary_key=True),
        sa.Column("watermark_us", sa.BigInteger),
        sa.Column("last_event_us", sa.BigInteger),
        sa.Column("last_write_at", sa.Double),
        sa.Column("rows_materialized", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("rows_pushed", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    )
    return metadata


tables = declared_tables(declare)


MIGRATIONS = [
    Migration(1, "m001_initial", apply=creating(declare)),
]
