"""The default vector store: LanceDB tables of embeddings, upserted by key, searched with an IVF index."""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from forgeml.contracts import Holding, Subject
from forgeml.errors import NotFoundError, StorageError, ValidationError

_IMPORT_LOCK = threading.Lock()


def _import_lancedb() -> Any:
    """Import lancedb even when the program has its own module named ``datasets`` loaded.

    lancedb registers converters for Hugging Face's ``datasets`` at import time whenever a module of that
    name is in sys.modules, and its import then fails on any other module so named (a user's own package).
    Such a module is hidden from sys.modules while lancedb imports, so lancedb skips those converters
    (the store hands it Arrow tables only); the module is put back at once.
    """
    if "lancedb" in sys.modules:
        import lancedb

        return lancedb
    with _IMPORT_LOCK:
        shadow = sys.modules.get("datasets")
        hide = shadow is not None and not (hasattr(shadow, "Dataset") and hasattr(shadow, "DatasetDict"))
        if hide:
            del sys.modules["datasets"]
        try:
            import lancedb
        except ImportError as e:
            where = getattr(shadow, "__file__", None) or repr(shadow)
            hint = f" (a module named 'datasets' is loaded from {where})" if shadow is not None else ""
            raise StorageError(f"the vector store needs lancedb, which failed to import: {e}{hint}") from e
        finally:
            if hide:
                sys.modules["datasets"] = shadow
    return lancedb


class LanceDBVectorStore:
    """Embedding tables in a LanceDB folder; an IVF_FLAT index is built once a table is large enough."""

    def __init__(self, uri: str, metric: str = "l2", index_min_rows: int = 50_000, rows_per_partition: int = 3_000,
                 nprobes_fraction: float = 0.25):
        lancedb = _import_lancedb()
        self.uri = str(uri)
        self.metric = metric
        self.index_min_rows = index_min_rows
        self.rows_per_partition = rows_per_partition
        self.nprobes_fraction = nprobes_fraction
        self._db = lancedb.connect(self.uri)
        self._lock = threading.Lock()
        self._partitions: dict[str, int] = {}  # table -> IVF partitions of its index, when indexed

    def _open(self, table: str) -> Any:
        try:
            return self._db.open_table(table)
        except (FileNotFoundError, ValueError) as e:
            raise NotFoundError(f"vector table {table!r} does not exist yet; push or materialize its view first") from e

    def _try_open(self, table: str) -> Any:
        try:
            return self._db.open_table(table)
        except (FileNotFoundError, ValueError):
            return None

    def count(self, table: str) -> int:
        """Return the rows stored in a table (0 when it does not exist)."""
        tbl = self._try_open(table)
        return 0 if tbl is None else tbl.count_rows()

    def upsert(self, table: str, data: pa.Table, vector_column: str, key_columns: Sequence[str]) -> int:
        """Insert or replace rows by key; build the index when the table first reaches index_min_rows."""
        if vector_column not in data.column_names:
            raise ValidationError(f"vector table {table!r}: rows have no {vector_column!r} column")
        if data.num_rows == 0:
            return 0
        with self._lock:
            try:
                tbl = self._try_open(table)
                if tbl is None:
                    tbl = self._db.create_table(table, data)
                else:
                    (tbl.merge_insert(list(key_columns)).when_matched_update_all().when_not_matched_insert_all()
                     .execute(data))
                rows = tbl.count_rows()
                if rows >= self.index_min_rows and table not in self._partitions:
                    self._build_index(tbl, table, vector_column, rows)
            except (OSError, RuntimeError, ValueError) as e:
                raise StorageError(f"vector table {table!r} in {self.uri}: {e}") from e
        return data.num_rows

    def _build_index(self, tbl: Any, table: str, vector_column: str, rows: int) -> None:
        from lancedb.index import IvfFlat

        if any(vector_column in (i.columns or []) for i in tbl.list_indices()):
            self._partitions[table] = max(1, rows // self.rows_per_partition)
            return
        partitions = max(1, rows // self.rows_per_partition)
        tbl.create_index(vector_column, config=IvfFlat(distance_type=self.metric, num_partitions=partitions,
                                                       max_iterations=10, sample_rate=64))
        self._partitions[table] = partitions

    def search(self, table: str, vector: Sequence[float], k: int, filter: str | None = None,
               vector_column: str | None = None) -> pa.Table:
        """Return the k nearest rows with a _distance column; filter is an SQL predicate applied first."""
        if k <= 0:
            raise ValidationError(f"nearest: k must be positive, got {k}")
        tbl = self._open(table)
        query = tbl.search(list(vector), vector_column_name=vector_column).distance_type(self.metric).limit(k)
        partitions = self._partitions.get(table)
        if partitions is None and tbl.count_rows() >= self.index_min_rows:
            partitions = max(1, tbl.count_rows() // self.rows_per_partition)
        if partitions:
            query = query.nprobes(max(1, int(partitions * self.nprobes_fraction)))
        if filter:
            query = query.where(filter, prefilter=True)
        try:
            return query.to_arrow()
        except (OSError, RuntimeError, ValueError) as e:
            raise ValidationError(f"nearest in {table!r} failed (is the filter {filter!r} valid SQL over its "
                                  f"columns?): {e}") from e

    # ------------------------------------------------------------ data subjects
    def _subject_filters(self, subject: Subject) -> list[tuple[str, Any, str]]:
        """Return (table, opened table, filter) for each table with the subject's column."""
        out = []
        for name in self._table_names():
            tbl = self._try_open(name)
            if tbl is None or subject.column not in tbl.schema.names:
                continue
            tp = tbl.schema.field(subject.column).type
            column = "`" + subject.column.replace("`", "``") + "`"
            if pa.types.is_integer(tp):
                if not subject.value.lstrip("-").isdigit():
                    continue  # an integer column cannot hold this value
                where = f"{column} = {int(subject.value)}"
            else:
                where = f"CAST({column} AS STRING) = '" + subject.value.replace("'", "''") + "'"
            out.append((name, tbl, where))
        return out

    def _table_names(self) -> list[str]:
        try:
            return list(self._db.table_names(limit=1_000_000))
        except TypeError:
            return list(self._db.table_names())

    def find_subject(self, subject: Subject) -> list[Holding]:
        """Return each table holding rows of the subject."""
        found = []
        for name, tbl, where in self._subject_filters(subject):
            rows = tbl.count_rows(where)
            if rows:
                found.append(Holding("vector", name, rows))
        return found

    def erase_subject(self, subject: Subject) -> list[Holding]:
        """Delete the subject's rows, then compact and drop every older version of the table's files."""
        from datetime import timedelta

        removed = []
        with self._lock:
            for name, tbl, where in self._subject_filters(subject):
                rows = tbl.count_rows(where)
                if not rows:
                    continue
                try:
                    tbl.delete(where)
                    # Lance keeps old versions (time travel) whose files still hold the rows: compact and
                    # remove every version but the new one (its warning about concurrent readers of old
                    # versions is the point here)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", UserWarning)
                        tbl.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)
                except (OSError, RuntimeError, ValueError) as e:
                    raise StorageError(f"vector table {name!r} in {self.uri}: cannot erase a subject: {e}") from e
                removed.append(Holding("vector", name, rows))
        return removed
    def rows(self, table: str, filter: str, limit: int) -> pa.Table:
        """Return up to limit rows matching an SQL predicate: an exact scan, never an approximate index."""
        tbl = self._open(table)
        try:
            return tbl.search().where(filter).limit(limit).to_arrow()
        except (OSError, RuntimeError, ValueError) as e:
            raise ValidationError(f"reading {table!r} where {filter!r} failed: {e}") from e

    def optimize(self, table: str, cleanup_older_than_s: float | None = None) -> dict[str, Any]:
        """Compact small fragments, fold unindexed rows into the index and drop old versions; report before/after."""
        from datetime import timedelta

        tbl = self._open(table)
        before = tbl.stats()["fragment_stats"]["num_fragments"]
        versions = len(tbl.list_versions())
        keep = None if cleanup_older_than_s is None else timedelta(seconds=cleanup_older_than_s)
        with self._lock:
            try:
                tbl.optimize(cleanup_older_than=keep)
            except (OSError, RuntimeError, ValueError) as e:
                raise StorageError(f"optimizing vector table {table!r} in {self.uri}: {e}") from e
        stats = tbl.stats()
        return {"table": table, "rows": stats["num_rows"], "fragments_before": before,
                "fragments_after": stats["fragment_stats"]["num_fragments"], "versions_before": versions,
                "versions_after": len(tbl.list_versions()), "indices": stats["num_indices"]}
