"""The monitoring layer's migration set: stored alerts and rule evaluations."""

from __future__ import annotations

from typing import Any

from forgeml.contracts import Migration

SET = "monitoring"
def _m001_initial(tx: Any) -> None:
    """Create the monitoring tables."""
    import sqlalchemy as sa

    from forgeml.sqltypes import ID, create_tables

    metadata = sa.MetaData()
    sa.Table(
        "monitoring_alerts", metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("value", sa.Double),
        sa.Column("threshold", sa.Double, nullable=False),
        sa.Column("op", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("pipeline", sa.Text),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
        sa.Column("deliveries", sa.Text, nullable=False, server_default="[]"),
        sa.Column("fired_at", sa.Double, nullable=False),
        sa.Column("last_seen_at", sa.Double, nullable=False),
        sa.Column("occurrences", sa.BigInteger, nullable=False, server_default=sa.text("1")),
        sa.Column("acknowledged_at", sa.Double),
        sa.Column("acknowledged_by", sa.Text),
        sa.Column("resolved_at", sa.Double),
        sa.Index("monitoring_alerts_status", "status", "fired_at"),
        sa.Index("monitoring_alerts_unresolved", "rule", "subject", unique=True,
                 sqlite_where=sa.text("status != 'resolved'"), postgresql_where=sa.text("status != 'resolved'")),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "monitoring_evaluations", metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("value", sa.Double),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("alert_id", sa.BigInteger),
        sa.Column("error", sa.Text),
        sa.Index("monitoring_evaluations_rule", "rule", "at"),
        sqlite_autoincrement=True,
    )
    create_tables(tx, metadata)


MIGRATIONS = [
    Migration(1, "m001_initial", apply=_m001_initial),
]


def store(workspace: Any) -> Any:
    """Return the metadata store with the monitoring tables in place."""
    return workspace.metadata_for(SET, MIGRATIONS)
