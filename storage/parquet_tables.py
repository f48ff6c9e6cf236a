"""Date-partitioned Parquet tables under a root folder or fsspec URL: the file layout offline stores share.

Each table is a folder of hive partitions ``date=YYYY-MM-DD`` holding immutable Parquet files. Files are
written under a ``.tmp`` name and renamed once complete, so readers (any engine) match ``*.parquet`` only
and never see half a file. The DuckDB store and the Spark store read the same layout, so a workspace can
switch engines without moving data.
"""

from __future__ import annotations

import glob
import os
import uuid
from collections.abc import Sequence
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from forgeml.contracts import FeatureRequest, Holding, Subject
from forgeml.errors import StorageError, ValidationError
from forgeml.pii.files import without_subject
from forgeml.times import timestamp_micros

PARTITION = "date"
# suffix of a Parquet file still being written (readers match *.parquet only)
PARTIAL = ".tmp"
US_PER_DAY = 86_400_000_000
ROW = "__forgeml_row"  # entity row number carried through a point-in-time join


def entity_times(entity_rows: pa.Table, timestamp_field: str) -> pa.Array:
    """Return the entity rows' event times in epoch microseconds, or raise naming what is wrong."""
    if timestamp_field not in entity_rows.column_names:
        raise ValidationError(f"entity rows have no {timestamp_field!r} column; add the event time of each row")
    return timestamp_micros(entity_rows.column(timestamp_field), f"entity rows column {timestamp_field!r}")


def entity_keys(entity_rows: pa.Table, requests: Sequence[FeatureRequest], micros: pa.Array) -> pa.Table:
    """Return what a join engine needs of the entity rows: join keys, ``__ts`` (UTC) and the row number."""
    import numpy as np

    keys = list(dict.fromkeys(k for req in requests for k in req.join_keys))
    # only keys, time and a row number go through the engine, so entity columns come back untouched
    return pa.table({**{k: entity_rows.column(k) for k in keys},
                     "__ts": pc.cast(micros, pa.timestamp("us", tz="UTC")),
                     ROW: pa.array(np.arange(entity_rows.num_rows, dtype=np.int64))})


def in_entity_order(entity_rows: pa.Table, joined: pa.Table) -> pa.Table:
    """Append a join's feature columns to the entity rows, put back in entity order by the row number."""
    import numpy as np

    # an inverse permutation: O(n), cheaper than sorting in the engine
    order = np.empty(joined.num_rows, dtype=np.int64)
    order[joined.column(ROW).to_numpy()] = np.arange(joined.num_rows, dtype=np.int64)
    joined = joined.drop_columns([ROW]).take(pa.array(order))
    out = entity_rows
    for name in joined.column_names:
        out = out.append_column(name, joined.column(name))
    return out


class ParquetTables:
    """Append-only tables of Parquet files partitioned by UTC date; engines subclass it to query them."""

    def __init__(self, root: str, fs: Any = None):
        self.root = str(root).rstrip("/")
        if fs is not None:  # a filesystem built by a plugin (endpoint, credentials) for this root
            self.fs, base = fs, fs._strip_protocol(self.root)
        else:
            self.fs, base = fsspec.core.url_to_fs(self.root)
        self.local = "://" not in self.root or self.root.startswith("file://")
        if self.root.startswith("file://"):
            self.root = base

    def _table_dir(self, table: str) -> str:
        return f"{self.root}/{table}"

    def visible_files(self, table: str) -> list[str]:
        """Return a table's Parquet files as readers must see them: finished, less those compaction replaced."""
        from forgeml.storage.parquet_compaction import visible_files

        return visible_files(self.fs, self._table_dir(table))

    def compact(self, table: str, min_files: int = 2, grace_s: float = 1.0) -> Any:
        """Rewrite each date partition's small files into one, atomically for readers (see parquet_compaction)."""
        from forgeml.storage.parquet_compaction import compact

        return compact(self, table, min_files=min_files, grace_s=grace_s)

    def _table_lock(self, table: str) -> Any:
        """Hold a table's lock while rewriting files compaction may be reading."""
        from forgeml.storage.parquet_compaction import table_lock

        return table_lock(self._table_dir(table), self.local)

    def has_table(self, table: str) -> bool:
        """Return whether any Parquet file was written to a table."""
        return bool(self.fs.glob(f"{self._table_dir(table)}/*/*.parquet"))

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
        # formatted once per distinct day, not once per row (strftime is the costly part of a big append)
        unique = pc.unique(days)
        labels = pc.strftime(pc.cast(unique, pa.date32()).cast(pa.timestamp("s")), format="%Y-%m-%d")
        dates = pc.take(labels, pc.index_in(days, value_set=unique))
        one_date = labels[0].as_py() if self.local and len(unique) == 1 else None
        rows = data
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
            if one_date is not None and rows.num_rows <= 1_000_000:
                # one date, one file: the file write_dataset would make, without its fixed cost per call
                # (a few milliseconds, most of a one-event push)
                import pyarrow.parquet as pq

                folder = f"{base_dir}/{PARTITION}={one_date}"
                os.makedirs(folder, exist_ok=True)
                written.append(f"{folder}/part-{batch}-0.parquet{PARTIAL}")
                pq.write_table(rows, written[0])
            else:
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

    def _tables(self) -> list[str]:
        if not self.fs.exists(self.root):
            return []
        names = (p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False) if self.fs.isdir(p))
        return sorted(n for n in names if not n.startswith("."))  # dot folders are an engine's scratch space


    def _subject_files(self, table: str, subject: Subject) -> dict[str, int]:
        """Return file -> rows of the subject in one table (empty when no file has the column)."""
        import pyarrow.parquet as pq

        found: dict[str, int] = {}
        for name in sorted(self.fs.glob(f"{self._table_dir(table)}/*/*.parquet")):
            try:
                with self.fs.open(name, "rb") as f:
                    parquet = pq.ParquetFile(f)
                    if subject.column not in parquet.schema_arrow.names:
                        continue
                    column = parquet.read(columns=[subject.column]).column(0)
            except (OSError, pa.ArrowException) as e:
                raise StorageError(f"offline table {table!r}: cannot search {name} for a subject: {e}") from e
            rows = pc.sum(pc.equal(pc.cast(column, pa.string()), subject.value)).as_py() or 0
            if rows:
                found[name] = rows
        return found

    def find_subject(self, subject: Subject) -> list[Holding]:
        """Return each Parquet file holding rows whose subject column equals the subject's value."""
        return [Holding("offline", f"{table}/{name.rsplit('/', 2)[-2]}/{name.rsplit('/', 1)[-1]}", rows)
                for table in self._tables() for name, rows in self._subject_files(table, subject).items()]

    def erase_subject(self, subject: Subject) -> list[Holding]:
        """Rewrite each file holding the subject without its rows (under a .tmp name, then renamed)."""
        removed = []
        for table in self._tables():
            with self._table_lock(table):
                removed += self._erase_in(table, subject)
        return removed

    def _erase_in(self, table: str, subject: Subject) -> list[Holding]:
        import pyarrow.parquet as pq

        removed = []
        for name, rows in self._subject_files(table, subject).items():
            try:
                with self.fs.open(name, "rb") as f:
                    data = pq.read_table(f)
                kept = without_subject(data, subject)[0]
                if kept.num_rows == 0:
                    self.fs.rm(name)
                else:
                    self._replace_file(name, kept)
            except (OSError, pa.ArrowException) as e:
                raise StorageError(f"offline table {table!r}: cannot rewrite {name} without the subject: "
                                   f"{e}") from e
            removed.append(Holding("offline", f"{table}/{name.rsplit('/', 2)[-2]}/{name.rsplit('/', 1)[-1]}", rows))
        return removed

    def expire(self, table: str, before_day: str, dry_run: bool = False) -> list[str]:
        """Remove a table's date partitions of days before ``before_day`` (YYYY-MM-DD); return those days."""
        with self._table_lock(table):
            return self._expire_in(table, before_day, dry_run)

    def _expire_in(self, table: str, before_day: str, dry_run: bool) -> list[str]:
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

    def _replace_file(self, name: str, data: pa.Table) -> None:
        """Write a file's new content under a .tmp name, then rename it over the old one."""
        import pyarrow.parquet as pq

        tmp = f"{name}{PARTIAL}"
        with self.fs.open(tmp, "wb") as f:
            pq.write_table(data, f, row_group_size=1_000_000)
        if self.local:
            os.replace(tmp, name)
        else:
            self.fs.mv(tmp, name)

    def map_text(self, pattern: Any, fn: Any, dry_run: bool = False) -> dict[str, int]:
        """Pass every match of ``pattern`` in text columns through ``fn``, rewriting files atomically.

        Returns the changed values per table (counted, not written, on a dry run).
        """

        changed: dict[str, int] = {}
        for table in self._tables():
            with self._table_lock(table):
                self._map_text_in(table, pattern, fn, dry_run, changed)
        return changed

    def _map_text_in(self, table: str, pattern: Any, fn: Any, dry_run: bool, changed: dict[str, int]) -> None:
        import pyarrow.parquet as pq

        for name in sorted(self.fs.glob(f"{self._table_dir(table)}/*/*.parquet")):
            try:
                with self.fs.open(name, "rb") as f:
                    data = pq.read_table(f)
                count = 0
                for i, column in enumerate(data.schema):
                    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
                        continue
                    values = data.column(i).to_pylist()
                    mapped = [v if v is None else pattern.sub(lambda m: fn(m.group(0)), v) for v in values]
                    diff = sum(a != b for a, b in zip(values, mapped, strict=True))
                    if diff:
                        count += diff
                        data = data.set_column(i, column, pa.array(mapped, column.type))
                if count:
                    changed[table] = changed.get(table, 0) + count
                    if not dry_run:
                        self._replace_file(name, data)
            except (OSError, pa.ArrowException) as e:
                raise StorageError(f"offline table {table!r}: cannot rewrite {name}: {e}") from e
