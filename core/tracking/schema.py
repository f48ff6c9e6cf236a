"""The tracking layer's tables and migration set: runs, params, tags, metric points, latest metrics, artifacts,
inputs.

The tables are declared once with ``sqlalchemy.Table``; m001 creates exactly these shapes. A later
migration that alters a table must give m001 its own copy of the shape m001 created.
"""

from __future__ import annotations

from typing import Any

from forgeml.contracts import Migration, creating, declared_tables

MIGRATION_SET = "tracking"


def declare(metadata: Any) -> Any:
    """Declare the tracking tables on a ``sqlalchemy.MetaData`` and return it."""
    import sqlalchemy as sa

    from forgeml.sqltypes import ID

    sa.Table(
        "tracking_runs", metadata,
        sa.Column("seq", ID, primary_key=True, autoincrement=True),
        sa.Column("id", sa.Text, nullable=False, unique=True),
        sa.Column("name", sa.Text),
        sa.Column("experiment", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("start_time", sa.Double, nullable=False),
        sa.Column("end_time", sa.Double),
        sa.Column("parent_id", sa.Text),
        sa.Column("job_id", sa.Text),
        sa.Column("deleted", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("deleted_at", sa.Double),
        sa.Column("context", sa.Text, nullable=False, server_default="{}"),
        sa.Column("params_json", sa.Text, nullable=False, server_default="{}"),
        sa.Column("metrics_json", sa.Text, nullable=False, server_default="{}"),
        sa.Column("tags_json", sa.Text, nullable=False, server_default="{}"),
        sa.Index("tracking_runs_job", "job_id"),
        sa.Index("tracking_runs_parent", "parent_id"),
        sa.Index("tracking_runs_start", "start_time"),
        sa.Index("tracking_runs_experiment", "experiment", "start_time"),
    )
    sa.Table(
        "tracking_params", metadata,
        sa.Column("run", sa.BigInteger, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("num", sa.Double),
        sa.PrimaryKeyConstraint("run", "key"),
        sa.Index("tracking_params_value", "key", "value"),
        sa.Index("tracking_params_num", "key", "num"),
        sqlite_with_rowid=False,
    )
    sa.Table(
        "tracking_tags", metadata,
        sa.Column("run", sa.BigInteger, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run", "key"),
        sa.Index("tracking_tags_value", "key", "value"),
        sqlite_with_rowid=False,
    )
    sa.Table(
        "tracking_metrics", metadata,
        sa.Column("run", sa.BigInteger, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("value", sa.Double),
        sa.Index("tracking_metrics_history", "run", "key", "step"),
    )
    sa.Table(
        "tracking_latest_metrics", metadata,
        sa.Column("run", sa.BigInteger, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", sa.Double),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("ts", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("run", "key"),
        sa.Index("tracking_latest_value", "key", "value"),
        sqlite_with_rowid=False,
    )
    sa.Table(
        "tracking_artifacts", metadata,
        sa.Column("run", sa.BigInteger, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("run", "path"),
        sqlite_with_rowid=False,
    )
    sa.Table(
        "tracking_inputs", metadata,
        sa.Column("run", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("run", "kind", "ref"),
        sa.Index("tracking_inputs_ref", "kind", "ref"),
        sqlite_with_rowid=False,
    )
    return metadata


tables = declared_tables(declare)


# Params and latest metrics are narrow key/value tables indexed by (key, value) so that a search
# filter on one key is an index range scan joined back to runs, not a scan of every run. Child
# tables point at a run by its integer seq (the rowid): joins on it are much cheaper than on the
# 32-character public id. The *_json columns of a run are snapshots of its params, latest metrics
# and tags, rewritten in the same transaction as the rows they summarise, so a search reads one row
# per matching run.
MIGRATIONS = [
    Migration(1, "m001_initial", apply=creating(declare)),
]


def artifact_references(workspace: Any) -> set[str]:
    """Return the artifact digests runs' artifacts point at (for ``forgeml doctor``)."""
    from forgeml.sqltypes import distinct_values

    metadata = workspace.metadata
    return distinct_values(metadata, "tracking_artifacts", "digest")
