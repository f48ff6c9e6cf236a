"""The tracking layer's migration set: runs, params, tags, metric points, latest metrics, artifacts, inputs."""

from __future__ import annotations

from forgeml.contracts import Migration

MIGRATION_SET = "tracking"

# Params and latest metrics are narrow key/value tables indexed by (key, value) so that a search
# filter on one key is an index range scan joined back to runs, not a scan of every run. Child
# tables point at a run by its integer seq (the rowid): joins on it are much cheaper than on the
# 32-character public id. The *_json columns of a run are snapshots of its params, latest metrics
# and tags, rewritten in the same transaction as the rows they summarise, so a search reads one row
# per matching run.
MIGRATIONS = [
    Migration(
        1,
        "m001_initial",
        """
        CREATE TABLE tracking_runs (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            name TEXT,
            experiment TEXT NOT NULL,
            status TEXT NOT NULL,
            start_time REAL NOT NULL,
            end_time REAL,
            parent_id TEXT,
            job_id TEXT,
            deleted INTEGER NOT NULL DEFAULT 0,
            deleted_at REAL,
            context TEXT NOT NULL DEFAULT '{}',
            params_json TEXT NOT NULL DEFAULT '{}',
            metrics_json TEXT NOT NULL DEFAULT '{}',
            tags_json TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX tracking_runs_experiment ON tracking_runs(experiment, start_time);
        CREATE INDEX tracking_runs_start ON tracking_runs(start_time);
        CREATE INDEX tracking_runs_parent ON tracking_runs(parent_id);
        CREATE INDEX tracking_runs_job ON tracking_runs(job_id);
        CREATE TABLE tracking_params (
            run INTEGER NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            num REAL,
            PRIMARY KEY (run, key)
        ) WITHOUT ROWID;
        CREATE INDEX tracking_params_num ON tracking_params(key, num);
        CREATE INDEX tracking_params_value ON tracking_params(key, value);
        CREATE TABLE tracking_tags (
            run INTEGER NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (run, key)
        ) WITHOUT ROWID;
        CREATE INDEX tracking_tags_value ON tracking_tags(key, value);
        CREATE TABLE tracking_metrics (
            run INTEGER NOT NULL,
            key TEXT NOT NULL,
            step INTEGER NOT NULL,
            ts REAL NOT NULL,
            value REAL
        );
        CREATE INDEX tracking_metrics_history ON tracking_metrics(run, key, step);
        CREATE TABLE tracking_latest_metrics (
            run INTEGER NOT NULL,
            key TEXT NOT NULL,
            value REAL,
            step INTEGER NOT NULL,
            ts REAL NOT NULL,
            PRIMARY KEY (run, key)
        ) WITHOUT ROWID;
        CREATE INDEX tracking_latest_value ON tracking_latest_metrics(key, value);
        CREATE TABLE tracking_artifacts (
            run INTEGER NOT NULL,
            path TEXT NOT NULL,
            digest TEXT NOT NULL,
            size INTEGER NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (run, path)
        ) WITHOUT ROWID;
        CREATE TABLE tracking_inputs (
            run INTEGER NOT NULL,
            kind TEXT NOT NULL,
            ref TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (run, kind, ref)
        ) WITHOUT ROWID;
        CREATE INDEX tracking_inputs_ref ON tracking_inputs(kind, ref);
        """,
    ),
]
