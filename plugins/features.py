"""Feature storage on the embedded engines: DuckDB+Parquet offline, SQLite online, LanceDB vectors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgeml import hookimpl
from forgeml.config import setting


@dataclass
class DuckDBOfflineSettings:
    """Settings of the DuckDB + Parquet offline store."""

    root: str = setting(".forgeml/features/offline",
                        "Where Parquet tables live: a folder relative to the workspace, or any fsspec URL.")
    threads: int = setting(0, "DuckDB worker threads (0: one per CPU core).")
    memory_limit: str = setting("", "DuckDB memory limit such as \"8GB\" (empty: DuckDB's default, 80% of RAM).")


@dataclass
class SQLiteOnlineSettings:
    """Settings of the SQLite online store."""

    path: str = setting(".forgeml/features/online.db", "Database file, relative to the workspace root.")
    busy_timeout_ms: int = setting(30000, "How long a writer waits for another process's lock before failing.")
    mmap_mb: int = setting(256, "Memory-mapped I/O size in MiB (faster reads of a hot online store).")


@dataclass
class LanceDBSettings:
    """Settings of the LanceDB vector store."""

    uri: str = setting(".forgeml/features/vectors", "LanceDB folder relative to the workspace, or a URI.")
    metric: str = setting("l2", "Distance: l2, cosine or dot.")
    index_min_rows: int = setting(50000, "Build an IVF index once a table holds this many rows (exact search below).")
    rows_per_partition: int = setting(3000, "Rows per IVF partition when the index is built.")
    nprobes_fraction: float = setting(0.25, "Share of IVF partitions searched per query (higher: better recall).")


def _offline(settings: DuckDBOfflineSettings, workspace: Any) -> Any:
    from forgeml.storage.offline import DuckDBOfflineStore

    root = settings.root if "://" in settings.root else str(workspace.resolve(settings.root))
    return DuckDBOfflineStore(root, threads=settings.threads or None, memory_limit=settings.memory_limit or None,
                              search_path=str(workspace.root))


def _online(settings: SQLiteOnlineSettings, workspace: Any) -> Any:
    from forgeml.storage.online import SQLiteOnlineStore

    return SQLiteOnlineStore(workspace.resolve(settings.path), busy_timeout_ms=settings.busy_timeout_ms,
                             mmap_mb=settings.mmap_mb)


def _vectors(settings: LanceDBSettings, workspace: Any) -> Any:
    from forgeml.storage.vectors import LanceDBVectorStore

    uri = settings.uri if "://" in settings.uri else str(workspace.resolve(settings.uri))
    return LanceDBVectorStore(uri, metric=settings.metric, index_min_rows=settings.index_min_rows,
                              rows_per_partition=settings.rows_per_partition,
                              nprobes_fraction=settings.nprobes_fraction)


@hookimpl
def forgeml_register_offline_stores(register):
    """Offer the DuckDB + Parquet offline store."""
    register("duckdb", _offline, settings=DuckDBOfflineSettings,
             description="date-partitioned Parquet queried with DuckDB (ASOF JOIN point-in-time joins)")


@hookimpl
def forgeml_register_online_stores(register):
    """Offer the SQLite online store."""
    register("sqlite", _online, settings=SQLiteOnlineSettings, description="latest values per entity in SQLite (WAL)")


@hookimpl
def forgeml_register_vector_stores(register):
    """Offer the LanceDB vector store."""
    register("lancedb", _vectors, settings=LanceDBSettings, description="LanceDB tables with IVF search")
