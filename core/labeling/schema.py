"""The labeling layer's tables and migration set: label sets, their labels, and annotation projects."""

from __future__ import annotations

from typing import Any

from forgeml.contracts import Migration

MIGRATION_SET = "labeling"


def _m001_initial(tx: Any) -> None:
    """Create the label set, label, project and sent-task tables."""
    import sqlalchemy as sa

    from forgeml.sqltypes import ID, create_tables

    metadata = sa.MetaData()
    sa.Table(
        "label_sets", metadata,
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("dataset", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("classes", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    # one row per (item, source): a source relabelling an item overwrites its earlier label
    sa.Table(
        "label_records", metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("label_set", sa.Text, nullable=False),
        sa.Column("item_key", sa.Text, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("source_kind", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("confidence", sa.Double),
        sa.Column("labelled_at", sa.Double, nullable=False),
        sa.Index("label_records_item", "label_set", "item_key", "source_kind", "source", unique=True),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "label_projects", metadata,
        sa.Column("label_set", sa.Text, nullable=False),
        sa.Column("backend", sa.Text, nullable=False),
        sa.Column("project", sa.Text, nullable=False),
        sa.Column("cursor", sa.Text),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("label_set", "backend"),
    )
    sa.Table(
        "label_sent", metadata,
        sa.Column("label_set", sa.Text, nullable=False),
        sa.Column("item_key", sa.Text, nullable=False),
        sa.Column("backend", sa.Text, nullable=False),
        sa.Column("strategy", sa.Text, nullable=False),
        sa.Column("sent_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("label_set", "item_key", "backend"),
    )
    create_tables(tx, metadata)


MIGRATIONS = [
    Migration(1, "m001_initial", apply=_m001_initial),
]


def store(workspace: Any) -> Any:
    """Return the metadata store with the labeling migration set applied."""
    return workspace.metadata_for(MIGRATION_SET, MIGRATIONS)
