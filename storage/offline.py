"""The default offline store: hive-partitioned Parquet by date (local folder or any fsspec URL) queried with DuckDB."""

from __future__ import annotations

import glob
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from forgeml.contracts import FeatureRequest, Holding, Subject
from forgeml.errors import StorageError, ValidationError
from forgeml.pii.files import without_subject
from forgeml.sql import quote_ident, quote_literal
from forgeml.times import timestamp_micros, to_utc_micros

PARTITION = "date"
# suffix of a Parquet file still being written (readers match *.parquet only)
PARTIAL = ".tmp"
ROW = "__forgeml_row"
US_PER_DAY = 86_400_000_000


class DuckDBOfflineStore:
    """Tables of Parquet files partitioned by date under a root folder or fsspec URL, queried with DuckDB."""

    def __init__(self, root: str, threads: int | None = None, memory_limit: str | None = None,
                 search_path: str | None = None, fs: Any = None):
        self.root = str(root).rstrip("/")
        if fs is not None:  # a filesystem built by a plugin (endpoint, credentials) for this root
            self.fs, base = fs, fs._strip_protocol(self.root)
        else:
            self.fs, base = fsspec.core.url_to_fs(self.root)
        self.local = "://" not in self.root or self.root.startswith("file://")
        if self.root.startswith("file://"):
            self.root = base
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
    def _table_dir(self, table: str) -> str:
        return f"{self.root}/{table}"

    def has_table(self, table: str) -> bool:
        """Return whether any Parquet file was written to a table."""
        return bool(self.fs.glob(f"{self._table_dir(table)}/*/*.parquet"))

    def table_relation(self, table: str) -> str:
        """Return DuckDB SQL reading a stored table (without its partition column)."""
        path = quote_literal(f"{self._table_dir(table)}/*/*.parquet")
        return f"(SELECT * EXCLUDE ({PARTITION}) FROM read_parquet({path}, hive_partitioning = true, union_by_name = true))"

    def write(self, table: str, data: pa.Table, timestamp_field: str) -> int:
        """Append rows as new Parquet files, one folder per UTC date of timestamp_field."""
        import pyarrow.dataset as ds

        if data.num_rows == 0:
            return 0
        if timestamp_field not in data.column_names:
            raise ValidationError(f"offline table {table!r}: rows have no {timestamp_field!r} column")
        if PARTITION in data.column_names:
            raise ValidationError(f"offline table {table!r}: the column name {PARTITION!r} is reserved for the "
                                  f"date partition; rename it")
        micros = timestamp_micros(data.column(timestamp_field), f"offline table {table!r}: {timestamp_field!r}")
        days = pc.cast(pc.divide(pc.subtract(micros, pc.if_else(pc.less(micros, 0), US_PER_DAY - 1, 0)),
                                 US_PER_DAY), pa.int32())
        dates = pc.strftime(pc.cast(days, pa.date32()).cast(pa.timestamp("s")), format="%Y-%m-%d")
        data = data.append_column(PARTITION, dates)
        if self.local:
            base_dir, filesystem = self._table_dir(table), None
        else:
            from pyarrow.fs import FSSpecHandler, PyFileSystem

            base_dir = self.fs._strip_protocol(self._table_dir(table))
            filesystem = PyFileSystem(FSSpecHandler(self.fs))
        # Files are written under a name readers do not match and renamed once complete, so a process
        # killed mid-write leaves an ignored .tmp file, never a truncated Parquet file in the table.
        written: list[str] = []
        batch = uuid.uuid4().hex
        try:
            ds.write_dataset(
                data, base_dir, format="parquet", filesystem=filesystem,
                partitioning=ds.partitioning(pa.schema([(PARTITION, pa.string())]), flavor="hive"),
                basename_template=f"part-{batch}-{{i}}.parquet{PARTIAL}",
                existing_data_behavior="overwrite_or_ignore", max_rows_per_group=1_000_000,
                file_visitor=lambda f: written.append(f.path),
            )
            for path in written:
                if self.local:
                    os.replace(path, path[: -len(PARTIAL)])
                else:
                    self.fs.mv(path, path[: -len(PARTIAL)])
        except (OSError, pa.ArrowException) as e:
            self._remove_partial(base_dir, batch)  # a full disk leaves no unfinished file behind
            raise StorageError(f"offline table {table!r}: cannot write Parquet under {self.root}: "
                               f"{' '.join(str(e).split())}") from e
        return data.num_rows

    def _remove_partial(self, base_dir: str, batch: str) -> None:
        """Delete the unfinished files of one failed write (best effort: the store may be unwritable)."""
        pattern = f"{base_dir}/*/part-{batch}-*.parquet{PARTIAL}"
        try:
            for path in (glob.glob(pattern) if self.local else self.fs.glob(pattern)):
                if self.local:
                    os.unlink(path)
                else:
                    self.fs.rm(path)
        except OSError:
            pass

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
        cur = self.cursor()
        try:
            for name, value in (tables or {}).items():
                cur.register(name, value)
            return cur.sql(sql).to_arrow_table()
        except duckdb.Error as e:
            raise StorageError(f"DuckDB query failed: {e}") from e
        finally:
            cur.close()

    # ------------------------------------------------------------ point-in-time join
    def point_in_time_join(self, entity_rows: pa.Table, requests: Sequence[FeatureRequest],
                           timestamp_field: str) -> pa.Table:
        """ASOF LEFT JOIN each request on its join keys and timestamp; keep every entity row, in order."""
        import numpy as np

        if timestamp_field not in entity_rows.column_names:
            raise ValidationError(f"entity rows have no {timestamp_field!r} column; add the event time of each row")
        micros = timestamp_micros(entity_rows.column(timestamp_field), f"entity rows column {timestamp_field!r}")
        if not requests:
            return entity_rows
        keys = list(dict.fromkeys(k for req in requests for k in req.join_keys))
        # only keys, time and a row number go through DuckDB, so entity columns come back untouched
        narrow = pa.table({**{k: entity_rows.column(k) for k in keys},
                           "__ts": pc.cast(micros, pa.timestamp("us", tz="UTC")),
                           ROW: pa.array(np.arange(entity_rows.num_rows, dtype=np.int64))})
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
        joined = self.query(sql, tables)
        # put rows back in entity order with an inverse permutation: O(n), cheaper than ORDER BY
        order = np.empty(joined.num_rows, dtype=np.int64)
        order[joined.column(ROW).to_numpy()] = np.arange(joined.num_rows, dtype=np.int64)
        joined = joined.drop_columns([ROW]).take(pa.array(order))
        out = entity_rows
        for name in joined.column_names:
            out = out.append_column(name, joined.column(name))
        return out

    # ------------------------------------------------------------ data subjects
    def _tables(self) -> list[str]:
        if not self.fs.exists(self.root):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)
                      if self.fs.isdir(p))

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

    def find_subject(self, subject: Subject) -> list[Holding]:
        """Return each Parquet file holding rows whose subject column equals the subject's value."""
        return [Holding("offline", f"{table}/{name.rsplit('/', 2)[-2]}/{name.rsplit('/', 1)[-1]}", rows)
                for table in self._tables() for name, rows in self._subject_files(table, subject).items()]

    def erase_subject(self, subject: Subject) -> list[Holding]:
        """Rewrite each file holding the subject without its rows (under a .tmp name, then renamed)."""
        import pyarrow.parquet as pq

        removed = []
        for table in self._tables():
            for name, rows in self._subject_files(table, subject).items():
                try:
                    with self.fs.open(name, "rb") as f:
                        data = pq.read_table(f)
                    kept = without_subject(data, subject)[0]
                    if kept.num_rows == 0:
                        self.fs.rm(name)
                    else:
                        tmp = f"{name}{PARTIAL}"
                        with self.fs.open(tmp, "wb") as f:
                            pq.write_table(kept, f, row_group_size=1_000_000)
                        if self.local:
                            os.replace(tmp, name)
                        else:
                            self.fs.mv(tmp, name)
                except (OSError, pa.ArrowException) as e:
                    raise StorageError(f"offline table {table!r}: cannot rewrite {name} without the subject: "
                                       f"{e}") from e
                removed.append(Holding("offline", f"{table}/{name.rsplit('/', 2)[-2]}/{name.rsplit('/', 1)[-1]}",
                                       rows))
        return removed

    def expire(self, table: str, before_day: str, dry_run: bool = False) -> list[str]:
        """Remove a table's date partitions of days before ``before_day`` (YYYY-MM-DD); return those days."""
        gone = []
        for folder in sorted(self.fs.glob(f"{self._table_dir(table)}/{PARTITION}=*")):
            day = folder.rstrip("/").rsplit("=", 1)[-1]
            if len(day) == 10 and day < before_day:
                if dry_run:
                    gone.append(day)
                    continue
                try:
                    self.fs.rm(folder, recursive=True)
                except OSError as e:
                    raise StorageError(f"offline table {table!r}: cannot remove the partition of {day}: {e}") from e
                gone.append(day)
        return gone

    def close(self) -> None:
        """Close the DuckDB connection."""
        with self._lock:
            self._con.close()

