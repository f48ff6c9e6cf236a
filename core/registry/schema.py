"""The registry's tables and migration sets: model versions, aliases, production history, gates, approvals,
evaluations, and the calibrators stored per version.

The tables are declared once with ``sqlalchemy.Table``; m001 of each set creates exactly these shapes.
A later migration that alters a table must give m001 its own copy of the shape m001 created.
"""

from __future__ import annotations

from typing import Any

from forgeml.contracts import Migration, creating, declared_tables

MIGRATION_SET = "registry"
CALIBRATION_SET = "calibration"


def declare(metadata: Any) -> Any:
    """Declare the registry tables on a ``sqlalchemy.MetaData`` and return it."""
    import sqlalchemy as sa

    from forgeml.sqltypes import ID

    sa.Table(
        "registry_models", metadata,
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    sa.Table(
        "registry_versions", metadata,
        sa.Column("name", sa.Text, sa.ForeignKey("registry_models.name"), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("flavor", sa.Text, nullable=False),
        sa.Column("artifact_digest", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=False, server_default="{}"),
        sa.Column("metrics", sa.Text, nullable=False, server_default="{}"),
        sa.Column("params", sa.Text, nullable=False, server_default="{}"),
        sa.Column("datasets", sa.Text, nullable=False, server_default="[]"),
        sa.Column("feature_views", sa.Text, nullable=False, server_default="[]"),
        sa.Column("entity_keys", sa.Text, nullable=False, server_default="[]"),
        sa.Column("tags", sa.Text, nullable=False, server_default="{}"),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("run_id", sa.Text),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("stage_changed_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("name", "version"),
        sa.Index("registry_versions_stage", "name", "stage"),
    )
    sa.Table(
        "registry_aliases", metadata,
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("alias", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("name", "alias"),
        sa.ForeignKeyConstraint(["name", "version"], ["registry_versions.name", "registry_versions.version"]),
    )
    sa.Table(
        "registry_production_history", metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("ended_at", sa.Double),
        sa.Column("ended_by", sa.Text),
        sa.Index("registry_production_history_name", "name", "ended_at"),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "registry_gate_results", metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("gate", sa.Text, nullable=False),
        sa.Column("passed", sa.BigInteger, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
        sa.Column("at", sa.Double, nullable=False),
        sa.Index("registry_gate_results_version", "name", "version", "at"),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "registry_approvals", metadata,
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("reviewer", sa.Text, nullable=False),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("name", "version", "reviewer"),
    )
    sa.Table(
        "registry_evaluations", metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("dataset", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("task", sa.Text, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Index("registry_evaluations_version", "name", "version", "at"),
        sqlite_autoincrement=True,
    )
    return metadata


def declare_calibrators(metadata: Any) -> Any:
    """Declare the calibrators table (its own migration set, ``calibration``) and return the MetaData."""
    import sqlalchemy as sa

    sa.Table(
        "calibrators", metadata,
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("artifact_digest", sa.Text, nullable=False),
        sa.Column("threshold", sa.Double, nullable=False),
        sa.Column("dataset", sa.Text, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("name", "version"),
    )
    return metadata


tables = declared_tables(declare, declare_calibrators)


MIGRATIONS = [
    Migration(1, "m001_initial", apply=creating(declare)),
]
CALIBRATION_MIGRATIONS = [Migration(1, "m001_calibrators", apply=creating(declare_calibrators))]


def store(workspace):
    """Return the metadata store with the registry migration set applied."""
    return workspace.metadata_for(MIGRATION_SET, MIGRATIONS)


def calibration_store(workspace: Any) -> Any:
    """Return the metadata store with the calibration migration set applied."""
    return workspace.metadata_for(CALIBRATION_SET, CALIBRATION_MIGRATIONS)


def artifact_references(workspace: Any) -> set[str]:
    """Return the artifact digests model versions and their calibrators point at (for ``forgeml doctor``)."""
    from forgeml.sqltypes import distinct_values

    metadata = workspace.metadata
    return (distinct_values(metadata, "registry_versions", "artifact_digest")
            | distinct_values(metadata, "calibrators", "artifact_digest"))
