"""The monitoring layer's migration set: stored alerts and rule evaluations."""

from __future__ import annotations

from typing import Any

from forgeml.contracts import Migration

SET = "monitoring"
MIGRATIONS = [
    Migration(
        1,
        "m001_initial",
        """
        CREATE TABLE monitoring_alerts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            rule TEXT NOT NULL,
            subject TEXT NOT NULL,
            metric TEXT NOT NULL,
            value REAL,
            threshold REAL NOT NULL,
            op TEXT NOT NULL,
            severity TEXT NOT NULL,
            status TEXT NOT NULL,
            message TEXT NOT NULL,
            pipeline TEXT,
            details TEXT NOT NULL DEFAULT '{}',
            deliveries TEXT NOT NULL DEFAULT '[]',
            fired_at REAL NOT NULL,
            last_seen_at REAL NOT NULL,
            occurrences INTEGER NOT NULL DEFAULT 1,
            acknowledged_at REAL,
            acknowledged_by TEXT,
            resolved_at REAL
        );
        CREATE UNIQUE INDEX monitoring_alerts_unresolved ON monitoring_alerts(rule, subject)
            WHERE status != 'resolved';
        CREATE INDEX monitoring_alerts_status ON monitoring_alerts(status, fired_at);
        CREATE TABLE monitoring_evaluations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            rule TEXT NOT NULL,
            subject TEXT NOT NULL,
            at REAL NOT NULL,
            value REAL,
            outcome TEXT NOT NULL,
            alert_id INTEGER,
            error TEXT
        );
        CREATE INDEX monitoring_evaluations_rule ON monitoring_evaluations(rule, at);
        """,
    ),
]


def store(workspace: Any) -> Any:
    """Return the metadata store with the monitoring tables in place."""
    return workspace.metadata_for(SET, MIGRATIONS)
