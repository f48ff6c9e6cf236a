"""The default offline store: hive-partitioned Parquet by date (local folder or any fsspec URL) queried with DuckDB."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from forgeml.contracts import FeatureRequest, Subject
from forgeml.errors import StorageError
from forgeml.sql import quote_ident, quote_literal
from forgeml.storage.parquet_tables import (
    PARTIAL,
    PARTITION,
    ROW,
    US_PER_DAY,
    ParquetTables,
    entity_keys,
    entity_times,
    in_entity_order,
)
from forgeml.times import to_utc_micros

__all__ = ["PARTIAL", "PARTITION", "US_PER_DAY", "DuckDBOfflineStore"]
ARROW_PREFIX = "__forgeml_arrow_"  # + hex of a table name: a stored table read through arrow_fs
TABLE_PREFIX = "__forgeml_table_"  # + hex of a table name: a stored table, its files listed when a query runs
STORED = re.compile(f"(?:{ARROW_PREFIX}|{TABLE_PREFIX})([0-9a-f]+)")
# DuckDB's words for a file that went between listing and reading (a compaction removed what it replaced)
GONE = ("No files found", "No such file", "Cannot open file", "FileNotFoundError")
RETRIES = 3


class DuckDBOfflineStore(ParquetTables):
    """Tables of Parquet files partitioned by date under a root folder or fsspec URL, queried with DuckDB."""

    def __init__(self, root: str, threads: int | None = None, memory_limit: str | None = None,
                 search_path: str | None = None, fs: Any = None, arrow_fs: Any = None):
        super().__init__(root, fs)
        # pyarrow's own filesystem client for reading stored tables (an object store's native client reads
        # Parquet several times faster than fsspec does through DuckDB); writes still go through fs
        self.arrow_fs = arrow_fs
        self._con = duckdb.connect()
        self._con.execute("SET TimeZone = 'UTC'")
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self._con.execute(f"SET memory_limit = {quote_literal(memory_limit)}")
        if search_path:  # relative paths in SQL sources resolve against the workspace, not the cwd
            self._con.execute(f"SET file_search_path = {quote_literal(search_path)}")
        if not self.local:
            self._con.register_filesystem(self.fs)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ connections
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """Return a new DuckDB cursor (one per call keeps threads apart)."""
        with self._lock:
            return self._con.cursor()

    def register_filesystem_for(self, url: str) -> None:
        """Make DuckDB read an fsspec URL (s3://, memory://, ...) that it does not read natively."""
        protocol = url.split("://", 1)[0]
        if protocol in ("", "file"):
            return
        with self._lock:
            if not self._con.filesystem_is_registered(protocol):
                self._con.register_filesystem(fsspec.filesystem(protocol))

    # ------------------------------------------------------------ tables
    def table_relation(self, table: str) -> str:
        """Return DuckDB SQL reading a stored table (without its partition column)."""
        # a name query() binds to the files visible when it runs: one listing, so a compaction that swaps
        # files meanwhile is seen either wholly or not at all
        if self.arrow_fs is not None:  # bound to a pyarrow dataset of the table's files
            return quote_ident(ARROW_PREFIX + table.encode().hex())
        return quote_ident(TABLE_PREFIX + table.encode().hex())  # bound to a view over read_parquet([...])

    def read(self, table: str, start: Any = None, end: Any = None, columns: Sequence[str] | None = None,
             timestamp_field: str = "event_timestamp") -> pa.Table:
        """Return a table's rows with timestamp_field in [start, end) (all rows when both are None)."""
        if not self.has_table(table):
            return pa.table({})
        where = self.time_filter(timestamp_field, start, end)
        cols = ", ".join(quote_ident(c) for c in columns) if columns else "*"
        return self.query(f"SELECT {cols} FROM {self.table_relation(table)} WHERE {where}")

    @staticmethod
    def time_filter(timestamp_field: str, start: Any, end: Any) -> str:
        """Return a DuckDB predicate for timestamp_field in [start, end)."""
        parts = ["TRUE"]
        col = f"CAST({quote_ident(timestamp_field)} AS TIMESTAMPTZ)"
        if start is not None:
            parts.append(f"{col} >= make_timestamptz({int(to_utc_micros(start))})")
        if end is not None:
            parts.append(f"{col} < make_timestamptz({int(to_utc_micros(end))})")
        return " AND ".join(parts)

    # ------------------------------------------------------------ queries
    def query(self, sql: str, tables: Mapping[str, pa.Table] | None = None) -> pa.Table:
        """Run DuckDB SQL with Arrow tables registered under the given names; return an Arrow table."""
        attempts = RETRIES + 1 if STORED.search(sql) else 1
        for attempt in range(1, attempts + 1):
            bound = {**self._arrow_datasets(sql), **(tables or {})}
            cur = self.cursor()
            try:
                self._bind_tables(cur, sql)
                for name, value in bound.items():
                    cur.register(name, value)
                return cur.sql(sql).to_arrow_table()
            except duckdb.Error as e:
                # a file listed for this query was replaced and removed by a compaction: list again
                if attempt == attempts or not any(word in str(e) for word in GONE):
                    raise StorageError(f"DuckDB query failed: {e}") from e
            finally:
                cur.close()
        return pa.table({})  # not reached: the last attempt returns or raises

    def _bind_tables(self, cur: Any, sql: str) -> None:
        """Create, on this cursor, a view over the files each stored table the SQL names holds now."""
        for name in set(re.findall(TABLE_PREFIX + "([0-9a-f]+)", sql)):
            table = bytes.fromhex(name).decode()
            files = self.visible_files(table)
            if not files:
                raise StorageError(f"offline table {table!r} has no rows under {self.root}")
            paths = ", ".join(quote_literal(p if self.local else self.fs.unstrip_protocol(p)) for p in files)
            cur.execute(f"CREATE TEMP VIEW {quote_ident(TABLE_PREFIX + name)} AS SELECT * EXCLUDE ({PARTITION}) "
                        f"FROM read_parquet([{paths}], hive_partitioning = true, union_by_name = true)")

    def _arrow_datasets(self, sql: str) -> dict[str, Any]:
        """Return a pyarrow dataset for each stored table the SQL names through table_relation (read via arrow_fs)."""
        if self.arrow_fs is None:
            return {}
        return {ARROW_PREFIX + name: self._arrow_dataset(bytes.fromhex(name).decode())
                for name in set(re.findall(ARROW_PREFIX + "([0-9a-f]+)", sql))}

    def _arrow_dataset(self, table: str) -> Any:
        """Return a pyarrow dataset over a table's finished Parquet files, listed now (other writers' files too)."""
        import pyarrow.dataset as ds
        from pyarrow.fs import FileSelector

        from forgeml.storage.parquet_compaction import COMPACTED, replaced_by

        base = self.fs._strip_protocol(self._table_dir(table))
        try:
            infos = self.arrow_fs.get_file_info(FileSelector(base, recursive=True, allow_not_found=True))
            paths = sorted(i.path for i in infos if i.is_file and i.path.endswith(".parquet"))
            hidden = {f"{p.rsplit('/', 1)[0]}/{r}" for p in paths if p.rsplit("/", 1)[-1].startswith(COMPACTED)
                      for r in replaced_by(self.fs, p)}
            paths = [p for p in paths if p not in hidden]
            if not paths:
                raise StorageError(f"offline table {table!r} has no rows under {self.root}")
            factory = ds.FileSystemDatasetFactory(self.arrow_fs, paths, ds.ParquetFileFormat())
            # every file's schema, as DuckDB's union_by_name: a column added later reads as null before
            return factory.finish(factory.inspect(promote_options="permissive"))
        except (OSError, pa.ArrowException) as e:
            raise StorageError(f"offline table {table!r}: cannot list or open its Parquet files under {self.root}: "
                               f"{' '.join(str(e).split())}") from e

    # ------------------------------------------------------------ point-in-time join
    def point_in_time_join(self, entity_rows: pa.Table, requests: Sequence[FeatureRequest],
                           timestamp_field: str) -> pa.Table:
        """ASOF LEFT JOIN each request on its join keys and timestamp; keep every entity row, in order."""
        micros = entity_times(entity_rows, timestamp_field)
        if not requests:
            return entity_rows
        narrow = entity_keys(entity_rows, requests, micros)
        bounds = pc.min_max(micros)
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        tables: dict[str, pa.Table] = {"__entity": narrow}
        select = [f"__e.{ROW}"]
        joins, ctes = [], []
        for i, req in enumerate(requests):
            alias = f"__f{i}"
            relation = req.relation
            if isinstance(relation, pa.Table):
                tables[f"__rel{i}"] = relation
                relation = f"__rel{i}"
            cols = [quote_ident(k) for k in req.join_keys] + [quote_ident(f) for f in req.features]
            f_ts = f"CAST({quote_ident(req.timestamp_field)} AS TIMESTAMPTZ)"
            where = []
            if hi is not None:
                where.append(f"{f_ts} <= make_timestamptz({hi})")
            if lo is not None and req.ttl_s is not None:
                where.append(f"{f_ts} >= make_timestamptz({lo - int(req.ttl_s * 1_000_000)})")
            ctes.append(f"{alias} AS (SELECT {', '.join(cols)}, {f_ts} AS __ts FROM {relation}"
                        f"{' WHERE ' + ' AND '.join(where) if where else ''})")
            on = " AND ".join(f"__e.{quote_ident(k)} = {alias}.{quote_ident(k)}" for k in req.join_keys)
            joins.append(f"ASOF LEFT JOIN {alias} ON {on} AND __e.__ts >= {alias}.__ts")
            for feature, out in zip(req.features, req.output_names):
                value = f"{alias}.{quote_ident(feature)}"
                if req.ttl_s is not None:
                    ttl_us = int(req.ttl_s * 1_000_000)
                    value = f"CASE WHEN {alias}.__ts >= __e.__ts - to_microseconds({ttl_us}) THEN {value} END"
                select.append(f"{value} AS {quote_ident(out)}")
        sql = f"WITH {', '.join(ctes)} SELECT {', '.join(select)} FROM __entity __e {' '.join(joins)}"
        return in_entity_order(entity_rows, self.query(sql, tables))

    # ------------------------------------------------------------ data subjects
    def _subject_files(self, table: str, subject: Subject) -> dict[str, int]:
        """Return file -> rows of the subject in one table (empty when the table lacks the column)."""
        if not self.has_table(table):
            return {}
        path = quote_literal(f"{self._table_dir(table)}/*/*.parquet")
        relation = f"read_parquet({path}, union_by_name = true, filename = true, hive_partitioning = false)"
        cur = self.cursor()
        try:
            columns = [r[0] for r in cur.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
            if subject.column not in columns:
                return {}
            rows = cur.execute(f"SELECT filename, count(*) FROM {relation} WHERE CAST({quote_ident(subject.column)}"
                               f" AS VARCHAR) = ? GROUP BY filename", [subject.value]).fetchall()
        except duckdb.Error as e:
            raise StorageError(f"offline table {table!r}: cannot search for a subject: {e}") from e
        finally:
            cur.close()
        return {name: count for name, count in rows}

    def close(self) -> None:
        """Close the DuckDB connection."""
        with self._lock:
            self._con.close()

