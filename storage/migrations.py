"""Migration sets: numbered schema steps, never edited once released, applied when a database opens."""

from __future__ import annotations

from forgeml.contracts import Migration

# The kernel's own tables; each layer (tracking, jobs, features, registry, ...) owns its own set.
CORE = "core"
CORE_MIGRATIONS = [
    Migration(
        1,
        "m001_initial",
        """
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            subject TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX audit_log_subject ON audit_log(subject, at);
        CREATE TABLE kv (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL
        );
        """,
    ),
]
