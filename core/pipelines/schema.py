"""The pipelines layer's migration set: runs, step runs, the step cache and trigger state."""

from __future__ import annotations

from typing import Any

from forgeml.contracts import Migration

SET = "pipelines"
MIGRATIONS = [
    Migration(
        1,
        "m001_initial",
        """
        CREATE TABLE pipeline_runs (
            id TEXT PRIMARY KEY,
            pipeline TEXT NOT NULL,
            status TEXT NOT NULL,
            cause TEXT NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            started_at REAL NOT NULL,
            ended_at REAL,
            error TEXT
        );
        CREATE INDEX pipeline_runs_pipeline ON pipeline_runs(pipeline, started_at);
        CREATE TABLE pipeline_step_runs (
            run_id TEXT NOT NULL REFERENCES pipeline_runs(id) ON DELETE CASCADE,
            node TEXT NOT NULL,
            step TEXT NOT NULL,
            position INTEGER NOT NULL,
            upstream TEXT NOT NULL DEFAULT '[]',
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            started_at REAL,
            ended_at REAL,
            duration_s REAL,
            cache_key TEXT,
            output_digest TEXT,
            output_format TEXT,
            job_id TEXT,
            error TEXT,
            PRIMARY KEY (run_id, node)
        );
        CREATE TABLE pipeline_cache (
            cache_key TEXT PRIMARY KEY,
            step TEXT NOT NULL,
            digest TEXT NOT NULL,
            format TEXT NOT NULL,
            run_id TEXT,
            created_at REAL NOT NULL
        );
        CREATE TABLE pipeline_trigger_state (
            trigger TEXT PRIMARY KEY,
            next_due REAL,
            last_fired REAL
        );
        CREATE TABLE pipeline_trigger_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            trigger TEXT NOT NULL,
            pipeline TEXT NOT NULL,
            cause TEXT NOT NULL,
            at REAL NOT NULL,
            run_id TEXT,
            status TEXT NOT NULL,
            error TEXT
        );
        """,
    ),
]


def store(workspace: Any) -> Any:
    """Return the metadata store with the pipelines tables in place."""
    return workspace.metadata_for(SET, MIGRATIONS)
