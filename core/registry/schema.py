"""The registry's migration set: model versions, aliases, production history, gates, approvals, evaluations."""

from __future__ import annotations

from forgeml.contracts import Migration

MIGRATION_SET = "registry"

MIGRATIONS = [
    Migration(
        1,
        "m001_initial",
        """
        CREATE TABLE registry_models (
            name TEXT PRIMARY KEY,
            description TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE registry_versions (
            name TEXT NOT NULL REFERENCES registry_models(name),
            version INTEGER NOT NULL,
            stage TEXT NOT NULL,
            flavor TEXT NOT NULL,
            artifact_digest TEXT NOT NULL,
            signature TEXT NOT NULL DEFAULT '{}',
            metrics TEXT NOT NULL DEFAULT '{}',
            params TEXT NOT NULL DEFAULT '{}',
            datasets TEXT NOT NULL DEFAULT '[]',
            feature_views TEXT NOT NULL DEFAULT '[]',
            entity_keys TEXT NOT NULL DEFAULT '[]',
            tags TEXT NOT NULL DEFAULT '{}',
            description TEXT NOT NULL DEFAULT '',
            run_id TEXT,
            created_at REAL NOT NULL,
            stage_changed_at REAL NOT NULL,
            PRIMARY KEY (name, version)
        );
        CREATE INDEX registry_versions_stage ON registry_versions(name, stage);
        CREATE TABLE registry_aliases (
            name TEXT NOT NULL,
            alias TEXT NOT NULL,
            version INTEGER NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (name, alias),
            FOREIGN KEY (name, version) REFERENCES registry_versions(name, version)
        );
        CREATE TABLE registry_production_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            ended_by TEXT
        );
        CREATE INDEX registry_production_history_name ON registry_production_history(name, ended_at);
        CREATE TABLE registry_gate_results (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            stage TEXT NOT NULL,
            gate TEXT NOT NULL,
            passed INTEGER NOT NULL,
            message TEXT NOT NULL,
            details TEXT NOT NULL DEFAULT '{}',
            at REAL NOT NULL
        );
        CREATE INDEX registry_gate_results_version ON registry_gate_results(name, version, at);
        CREATE TABLE registry_approvals (
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            reviewer TEXT NOT NULL,
            comment TEXT NOT NULL DEFAULT '',
            at REAL NOT NULL,
            PRIMARY KEY (name, version, reviewer)
        );
        CREATE TABLE registry_evaluations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            dataset TEXT NOT NULL,
            target TEXT NOT NULL,
            task TEXT NOT NULL,
            metrics TEXT NOT NULL,
            result TEXT NOT NULL,
            at REAL NOT NULL
        );
        CREATE INDEX registry_evaluations_version ON registry_evaluations(name, version, at);
        """,
    ),
]


def store(workspace):
    """Return the metadata store with the registry migration set applied."""
    return workspace.metadata_for(MIGRATION_SET, MIGRATIONS)
