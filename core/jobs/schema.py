"""The jobs layer's migration set: the queue, attempts and the state-transition history."""

from __future__ import annotations

from forgeml.contracts import Migration

MIGRATION_SET = "jobs"

# Placement inputs live in plain columns so a scheduling cycle never parses the JSON spec.
MIGRATIONS = [
    Migration(
        1,
        "m001_initial",
        """
        CREATE TABLE jobs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            spec TEXT NOT NULL,
            state TEXT NOT NULL,
            target TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            gpus INTEGER NOT NULL DEFAULT 0,
            gpu_type TEXT,
            min_gpu_memory_mb INTEGER,
            shared INTEGER NOT NULL DEFAULT 0,
            cpus REAL,
            memory_mb INTEGER,
            preemptible INTEGER NOT NULL DEFAULT 1,
            max_retries INTEGER NOT NULL DEFAULT 0,
            timeout_s REAL,
            attempts INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            preemptions INTEGER NOT NULL DEFAULT 0,
            exit_code INTEGER,
            reason TEXT NOT NULL DEFAULT '',
            run_id TEXT,
            handle TEXT,
            assigned_gpus TEXT NOT NULL DEFAULT '[]',
            assigned_cpus TEXT NOT NULL DEFAULT '[]',
            log_path TEXT,
            stop_requested TEXT,
            stop_sent_at REAL,
            not_before REAL NOT NULL DEFAULT 0,
            submitted_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX jobs_state ON jobs(state, priority, seq);
        CREATE TABLE job_attempts (
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            attempt INTEGER NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            exit_code INTEGER,
            outcome TEXT,
            reason TEXT NOT NULL DEFAULT '',
            gpus TEXT NOT NULL DEFAULT '[]',
            handle TEXT,
            log_path TEXT,
            PRIMARY KEY (job_id, attempt)
        );
        CREATE TABLE job_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            at REAL NOT NULL,
            old_state TEXT,
            new_state TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX job_events_job ON job_events(job_id, id);
        """,
    ),
]
