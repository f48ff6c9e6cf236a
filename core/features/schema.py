"""The feature registry's tables: the migration set "features" in the metadata store."""

from __future__ import annotations

from forgeml.contracts import Migration

MIGRATION_SET = "features"

MIGRATIONS = [
    Migration(
        1,
        "m001_initial",
        """
        CREATE TABLE features_objects (
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            spec TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (kind, name, version)
        );
        CREATE TABLE features_lineage (
            src_kind TEXT NOT NULL,
            src TEXT NOT NULL,
            dst_kind TEXT NOT NULL,
            dst TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (src_kind, src, dst_kind, dst)
        );
        CREATE INDEX features_lineage_dst ON features_lineage(dst_kind, dst);
        CREATE TABLE features_state (
            view TEXT PRIMARY KEY,
            watermark_us INTEGER,
            last_event_us INTEGER,
            last_write_at REAL,
            rows_materialized INTEGER NOT NULL DEFAULT 0,
            rows_pushed INTEGER NOT NULL DEFAULT 0
        );
        """,
    ),
]
