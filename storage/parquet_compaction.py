"""Compaction of a Parquet table's many small files (one per push or stream batch) into one file per date.

Readers take a snapshot of the file list, so a compaction must change that list in one atomic step. The
compacted file names, in its own Parquet footer, the files it replaces; it is written under a ``.tmp``
name and renamed into place, and from that rename on every listing leaves the replaced files out
(:func:`visible_files`), whether or not they still exist. Only then are they deleted, after a grace
period so a listing in progress never misses both the old files and the new one. A process killed at
any step leaves either a ``.tmp`` file (ignored, removed by the next run) or replaced files the listing
already hides (deleted by the next run): no row is lost or counted twice.

Writers only ever add new files, and a compaction touches only the files it listed when it started, so
pushes and stream batches need no lock. Rewrites of existing files (erasure, expiry, another
compaction) take the table's lock (:func:`table_lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from forgeml.errors import StorageError, ValidationError

COMPACTED = "compact-"  # name prefix of a file written by compaction
REPLACES = b"forgeml.replaces"  # footer key: JSON list of the file names (same folder) a compacted file replaces
LOCK = ".forgeml-table.lock"
PARTIAL = ".tmp"


@dataclass
class Compaction:
    """What one compaction of a table did."""

    table: str
    files_before: int = 0
    files_after: int = 0
    rows: int = 0
    partitions: list[str] = field(default_factory=list)
    leftovers_removed: int = 0
    seconds: float = 0.0


_replaced_cache: dict[str, tuple[str, ...]] = {}  # compacted files are immutable: their footer is read once


def replaced_by(fs: Any, path: str) -> tuple[str, ...]:
    """Return the names (in the same folder) of the files a compacted file replaces."""
    import pyarrow.parquet as pq

    cached = _replaced_cache.get(path)
    if cached is None:
        try:
            with fs.open(path, "rb") as f:
                meta = pq.ParquetFile(f).metadata.metadata or {}
        except FileNotFoundError:
            return ()  # replaced itself by a later compaction meanwhile: the caller's listing is already stale
        except (OSError, pa.ArrowException) as e:
            raise StorageError(f"cannot read the footer of compacted file {path}: {e}") from e
        cached = tuple(json.loads(meta.get(REPLACES, b"[]")))
        if len(_replaced_cache) > 10_000:
            _replaced_cache.clear()
        _replaced_cache[path] = cached
    return cached


def visible_files(fs: Any, table_dir: str) -> list[str]:
    """Return a table's finished Parquet files, less those a compacted file replaces (sorted paths)."""
    paths = sorted(fs.glob(f"{table_dir}/*/*.parquet"))
    hidden: set[str] = set()
    for path in paths:
        folder, name = path.rsplit("/", 1)
        if name.startswith(COMPACTED):
            hidden.update(f"{folder}/{r}" for r in replaced_by(fs, path))
    return [p for p in paths if p not in hidden] if hidden else paths


@contextlib.contextmanager
def table_lock(table_dir: str, local: bool) -> Iterator[int]:
    """Hold a table's exclusive lock, first finishing what a killed compaction left; yield the files removed.

    Local roots only: an object store has no lock to take (and is never compacted).
    """
    if not local or not os.path.isdir(table_dir):
        yield 0
        return
    fd = os.open(os.path.join(table_dir, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield sum(_finish_earlier(os.path.join(table_dir, d)) for d in sorted(os.listdir(table_dir))
                  if os.path.isdir(os.path.join(table_dir, d)))
    finally:
        os.close(fd)  # closing releases the lock, also when the process dies


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _finish_earlier(folder: str) -> int:
    """Remove what a killed compaction left in a partition folder: unfinished files, replaced files."""
    removed = 0
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(COMPACTED) and name.endswith(PARTIAL):
            os.unlink(path)
        elif name.startswith(COMPACTED) and name.endswith(".parquet"):
            for old in replaced_by_local(path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, old))
                    removed += 1
    return removed


def replaced_by_local(path: str) -> tuple[str, ...]:
    """Return the names a local compacted file replaces."""
    import fsspec

    return replaced_by(fsspec.filesystem("file"), path)


def _unified_schema(paths: list[str]) -> pa.Schema:
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(p) for p in paths]
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowException, ValueError) as e:
        raise StorageError(f"cannot compact {os.path.dirname(paths[0])}: its files' columns disagree: {e}") from e


def _conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Give a file's rows the unified schema: missing columns null, others cast (as union_by_name reads them)."""
    columns = []
    for f in schema:
        if f.name in data.column_names:
            col = data.column(f.name)
            columns.append(col if col.type == f.type else col.cast(f.type))
        else:
            columns.append(pa.nulls(data.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _rewrite(folder: str, names: list[str], row_group_rows: int) -> tuple[str, int]:
    """Write the rows of ``names`` into one compacted file under a .tmp name; return its path and rows."""
    import pyarrow.parquet as pq

    paths = [os.path.join(folder, n) for n in names]
    schema = _unified_schema(paths)
    schema = schema.with_metadata({**(schema.metadata or {}), REPLACES: json.dumps(names).encode()})
    tmp = os.path.join(folder, f"{COMPACTED}{uuid.uuid4().hex}.parquet{PARTIAL}")
    rows, pending, pending_rows = 0, [], 0
    with pq.ParquetWriter(tmp, schema) as writer:
        for path in paths:
            data = _conform(pq.read_table(path), schema)
            pending.append(data)
            pending_rows += data.num_rows
            if pending_rows >= row_group_rows:
                writer.write_table(pa.concat_tables(pending), row_group_size=row_group_rows)
                rows += pending_rows
                pending, pending_rows = [], 0
        if pending:
            writer.write_table(pa.concat_tables(pending), row_group_size=row_group_rows)
            rows += pending_rows
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    return tmp, rows


def compact(tables: Any, table: str, min_files: int = 2, large_bytes: int = 128 << 20,
            row_group_rows: int = 1_000_000, grace_s: float = 1.0) -> Compaction:
    """Rewrite each date partition's small files of a table into one file, atomically for readers.

    Files of ``large_bytes`` or more stay as they are; a partition with fewer than ``min_files`` small files
    is left alone. Replaced files are deleted ``grace_s`` after the last new file is in place.
    """
    if not tables.local:
        raise ValidationError(f"offline table {table!r}: compaction needs a local offline root, {tables.root!r} "
                              f"is an object store (its files are rewritten by the store's own tools)")
    table_dir = tables._table_dir(table)
    if not os.path.isdir(table_dir):
        raise ValidationError(f"offline table {table!r} has no rows under {tables.root}")
    started = time.monotonic()
    result = Compaction(table)
    with table_lock(table_dir, True) as leftovers:
        result.leftovers_removed = leftovers
        folders = sorted(os.path.join(table_dir, d) for d in os.listdir(table_dir)
                         if os.path.isdir(os.path.join(table_dir, d)))
        replaced: list[str] = []
        for folder in folders:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".parquet"))
            result.files_before += len(names)
            small = [n for n in names if os.path.getsize(os.path.join(folder, n)) < large_bytes]
            if len(small) < min_files:
                result.files_after += len(names)
                continue
            try:
                tmp, rows = _rewrite(folder, small, row_group_rows)
            except (OSError, pa.ArrowException) as e:
                _finish_earlier(folder)
                raise StorageError(f"offline table {table!r}: cannot compact {folder}: {' '.join(str(e).split())}"
                                   ) from e
            os.replace(tmp, tmp[: -len(PARTIAL)])  # the one step that switches readers to the new file
            _fsync_dir(folder)
            replaced += [os.path.join(folder, n) for n in small]
            result.rows += rows
            result.files_after += len(names) - len(small) + 1
            result.partitions.append(os.path.basename(folder))
        if replaced and grace_s > 0:
            time.sleep(grace_s)  # a directory listing that began before a rename finishes before its files go
        for path in replaced:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    result.seconds = round(time.monotonic() - started, 3)
    return result
