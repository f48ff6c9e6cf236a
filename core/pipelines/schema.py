"""The pipelines layer's migration set: runs, step runs, the step cache and trigger state."""

from __future__ import annotations

from typing import Any

from forgeml.contracts import Migration

SET = "pipelines"
def _m001_initial(tx: Any) -> None:
    """Create the pipelines tables."""
    import sqlalchemy as sa

    from forgeml.sqltypes import ID, create_tables

    metadata = sa.MetaData()
    sa.Table(
        "pipeline_runs", metadata,
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("pipeline", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("params", sa.Text, nullable=False, server_default="{}"),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("ended_at", sa.Double),
        sa.Column("error", sa.Text),
        sa.Index("pipeline_runs_pipeline", "pipeline", "started_at"),
    )
    sa.Table(
        "pipeline_step_runs", metadata,
        sa.Column("run_id", sa.Text, sa.ForeignKey("pipeline_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("node", sa.Text, nullable=False),
        sa.Column("step", sa.Text, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("upstream", sa.Text, nullable=False, server_default="[]"),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempts", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("started_at", sa.Double),
        sa.Column("ended_at", sa.Double),
        sa.Column("duration_s", sa.Double),
        sa.Column("cache_key", sa.Text),
        sa.Column("output_digest", sa.Text),
        sa.Column("output_format", sa.Text),
        sa.Column("job_id", sa.Text),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("run_id", "node"),
    )
    sa.Table(
        "pipeline_cache", metadata,
        sa.Column("cache_key", sa.Text, primary_key=True),
        sa.Column("step", sa.Text, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    sa.Table(
        "pipeline_trigger_state", metadata,
        sa.Column("trigger", sa.Text, primary_key=True),
        sa.Column("next_due", sa.Double),
        sa.Column("last_fired", sa.Double),
    )
    sa.Table(
        "pipeline_trigger_events", metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("pipeline", sa.Text, nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sqlite_autoincrement=True,
    )
    create_tables(tx, metadata)


MIGRATIONS = [
    Migration(1, "m001_initial", apply=_m001_initial),
]


def store(workspace: Any) -> Any:
    """Return the metadata store with the pipelines tables in place."""
    return workspace.metadata_for(SET, MIGRATIONS)


def artifact_references(workspace: Any) -> set[str]:
    """Return the artifact digests pipeline step outputs and the step cache point at (for ``forgeml doctor``)."""
    from forgeml.sqltypes import distinct_values

    metadata = workspace.metadata
    return (distinct_values(metadata, "pipeline_step_runs", "output_digest")
            | distinct_values(metadata, "pipeline_cache", "digest"))
