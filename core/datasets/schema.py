"""The datasets layer's migration set: versions, their sources, and the runs that used them."""

from __future__ import annotations

from forgeml.contracts import Migration

MIGRATION_SET = "datasets"

MIGRATIONS = [
    Migration(
        1,
        "m001_initial",
        """
        CREATE TABLE dataset_versions (
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            digest TEXT NOT NULL,
            data_digest TEXT NOT NULL,
            schema TEXT NOT NULL,
            num_rows INTEGER NOT NULL,
            num_bytes INTEGER NOT NULL,
            source_kind TEXT NOT NULL,
            source TEXT NOT NULL,
            files TEXT NOT NULL DEFAULT '[]',
            description TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL,
            PRIMARY KEY (name, version)
        );
        CREATE UNIQUE INDEX dataset_versions_digest ON dataset_versions(name, digest);
        CREATE TABLE dataset_usage (
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            run_id TEXT NOT NULL,
            used_at REAL NOT NULL,
            PRIMARY KEY (name, version, run_id)
        );
        CREATE TABLE dataset_validations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            passed INTEGER NOT NULL,
            report TEXT NOT NULL,
            at REAL NOT NULL
        );
        CREATE INDEX dataset_validations_version ON dataset_validations(name, version, at);
        """,
    ),
]


def store(workspace):
    """Return the metadata store with the datasets migration set applied."""
    return workspace.metadata_for(MIGRATION_SET, MIGRATIONS)
