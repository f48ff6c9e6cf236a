"""The datasets layer's migration set: versions, their sources, and the runs that used them."""

from __future__ import annotations

from typing import Any

from forgeml.contracts import Migration

MIGRATION_SET = "datasets"


def _m001_initial(tx: Any) -> None:
    """Create the datasets tables."""
    import sqlalchemy as sa

    from forgeml.sqltypes import ID, create_tables

    metadata = sa.MetaData()
    sa.Table(
        "dataset_versions", metadata,
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("data_digest", sa.Text, nullable=False),
        sa.Column("schema", sa.Text, nullable=False),
        sa.Column("num_rows", sa.BigInteger, nullable=False),
        sa.Column("num_bytes", sa.BigInteger, nullable=False),
        sa.Column("source_kind", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("files", sa.Text, nullable=False, server_default="[]"),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("tags", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("name", "version"),
        sa.Index("dataset_versions_digest", "name", "digest", unique=True),
    )
    sa.Table(
        "dataset_usage", metadata,
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("used_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("name", "version", "run_id"),
    )
    sa.Table(
        "dataset_validations", metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("passed", sa.BigInteger, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Index("dataset_validations_version", "name", "version", "at"),
        sqlite_autoincrement=True,
    )
    create_tables(tx, metadata)


def _m002_erasures(tx: Any) -> None:
    """Create the table recording which versions an erasure replaced, and by which version."""
    import sqlalchemy as sa

    from forgeml.sqltypes import create_tables

    metadata = sa.MetaData()
    sa.Table(
        "dataset_erasures", metadata,
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("replaced_by", sa.BigInteger),
        sa.Column("erasure", sa.Text, nullable=False),
        sa.Column("rows_removed", sa.BigInteger, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("name", "version", "erasure"),
    )
    create_tables(tx, metadata)


MIGRATIONS = [
    Migration(1, "m001_initial", apply=_m001_initial),
    Migration(2, "m002_erasures", apply=_m002_erasures),
]


def store(workspace):
    """Return the metadata store with the datasets migration set applied."""
    return workspace.metadata_for(MIGRATION_SET, MIGRATIONS)


def artifact_references(workspace: Any) -> set[str]:
    """Return the artifact digests dataset versions point at: their snapshots and original files (for doctor)."""
    import json

    from forgeml.sqltypes import distinct_values

    found = distinct_values(workspace.metadata, "dataset_versions", "data_digest")
    for files in distinct_values(workspace.metadata, "dataset_versions", "files"):
        found |= {f["digest"] for f in json.loads(files) if f.get("digest")}
    return found
