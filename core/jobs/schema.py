"""The jobs layer's tables and migration set: the queue, attempts and the state-transition history.

The tables are declared once with ``sqlalchemy.Table``; m001 creates exactly these shapes. A later
migration that alters a table must give m001 its own copy of the shape m001 created.
"""

from __future__ import annotations

from typing import Any

from forgeml.contracts import Migration, creating, declared_tables

MIGRATION_SET = "jobs"


def declare(metadata: Any) -> Any:
    """Declare the jobs tables on a ``sqlalchemy.MetaData`` and return it."""
    import sqlalchemy as sa

    from forgeml.sqltypes import ID

    sa.Table(
        "jobs", metadata,
        sa.Column("seq", ID, primary_key=True),
        sa.Column("id", sa.Text, nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("priority", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("gpus", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("gpu_type", sa.Text),
        sa.Column("min_gpu_memory_mb", sa.BigInteger),
        sa.Column("shared", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("cpus", sa.Double),
        sa.Column("memory_mb", sa.BigInteger),
        sa.Column("preemptible", sa.BigInteger, nullable=False, server_default=sa.text("1")),
        sa.Column("max_retries", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("timeout_s", sa.Double),
        sa.Column("attempts", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("failures", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("preemptions", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("exit_code", sa.BigInteger),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("run_id", sa.Text),
        sa.Column("handle", sa.Text),
        sa.Column("assigned_gpus", sa.Text, nullable=False, server_default="[]"),
        sa.Column("assigned_cpus", sa.Text, nullable=False, server_default="[]"),
        sa.Column("log_path", sa.Text),
        sa.Column("stop_requested", sa.Text),
        sa.Column("stop_sent_at", sa.Double),
        sa.Column("not_before", sa.Double, nullable=False, server_default=sa.text("0")),
        sa.Column("submitted_at", sa.Double, nullable=False),
        sa.Column("started_at", sa.Double),
        sa.Column("finished_at", sa.Double),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Index("jobs_state", "state", "priority", "seq"),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "job_attempts", metadata,
        sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("finished_at", sa.Double),
        sa.Column("exit_code", sa.BigInteger),
        sa.Column("outcome", sa.Text),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("gpus", sa.Text, nullable=False, server_default="[]"),
        sa.Column("handle", sa.Text),
        sa.Column("log_path", sa.Text),
        sa.PrimaryKeyConstraint("job_id", "attempt"),
    )
    sa.Table(
        "job_events", metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("old_state", sa.Text),
        sa.Column("new_state", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Index("job_events_job", "job_id", "id"),
        sqlite_autoincrement=True,
    )
    return metadata


tables = declared_tables(declare)


# Placement inputs live in plain columns so a scheduling cycle never parses the JSON spec.
MIGRATIONS = [
    Migration(1, "m001_initial", apply=creating(declare)),
]
