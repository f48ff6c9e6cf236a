"""The Spark offline store: the shared Parquet layout, read and joined point-in-time by Apache Spark."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from forgeml.contracts import FeatureRequest, WindowRequest
from forgeml.errors import StorageError, ValidationError
from forgeml.plugins.spark.dialect import FileScan, to_spark
from forgeml.storage.parquet_tables import (
    PARTITION,
    ROW,
    ParquetTables,
    entity_keys,
    entity_times,
    in_entity_order,
)
from forgeml.times import to_utc_micros

TABLE_PREFIX = "__forgeml_offline_"  # + hex of the table name: a relation naming a stored table
DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",  # timestamps are instants; results come back in UTC
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
STAGING = ".staging"  # folder under the root for entity rows handed to Spark as Parquet (not a table)
STAGED_MAX_AGE_S = 86_400.0  # staged entity rows older than this belong to a query whose process died
STAGE_BYTES = 4 << 20  # larger entity tables go through Parquet rather than inside Spark's tasks
S3A_CLASS = "org.apache.hadoop.fs.s3a.S3AFileSystem"
_session_lock = threading.Lock()


@dataclass(frozen=True)
class Staged:
    """A file a query wrote under the root for Spark to read (removed when the query is done)."""

    path: str


def spark_session(master: str, app_name: str, conf: Mapping[str, str]) -> Any:
    """Return this process's SparkSession, starting it (and its driver JVM) on first use."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as e:
        raise StorageError(f"the Spark offline store needs pyspark: pip install 'forgeml[spark]' ({e})") from e
    with _session_lock:
        builder = SparkSession.builder.master(master).appName(app_name)
        for key, value in {**DEFAULT_CONF, **conf}.items():
            builder = builder.config(key, value)
        try:
            return builder.getOrCreate()
        except Exception as e:  # the JVM failed to start: no Java, a bad master URL, a port in use
            raise StorageError(f"Spark could not start with master {master!r} (Java 17+ must be installed): "
                               f"{' '.join(str(e).split())[:500]}") from e


def _spark_errors() -> tuple[type[BaseException], ...]:
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    return PySparkException, Py4JError


class SparkOfflineStore(ParquetTables):
    """Date-partitioned Parquet tables (local folder or a path every node mounts) queried with Spark."""

    def __init__(self, root: str, master: str = "local[2]", app_name: str = "forgeml",
                 conf: Mapping[str, str] | None = None, search_path: str | None = None, fs: Any = None):
        if "://" in str(root) and not str(root).startswith("file://") and fs is None:
            raise ValidationError(f"Spark offline store: root must be a folder every Spark node sees, got "
                                  f"{root!r} (an s3:// root is configured through the plugin's S3 settings)")
        super().__init__(root, fs=fs)
        self.master, self.app_name, self.conf = master, app_name, dict(conf or {})
        self.search_path = search_path
        self.stage_bytes = STAGE_BYTES
        self._spark: Any = None  # started on first query: writing and listing need no JVM

    @property
    def spark(self) -> Any:
        """The SparkSession this store runs on (started on first use)."""
        if self._spark is None:
            spark = spark_session(self.master, self.app_name, self.conf)
            hadoop = spark.sparkContext._jsc.hadoopConfiguration()
            for key, value in self.conf.items():  # the process's session may predate this store's settings
                if key.startswith("spark.hadoop."):
                    hadoop.set(key[len("spark.hadoop."):], value)
            if not self.local:
                try:
                    jvm = spark._jvm  # the loader Spark adds spark.jars / spark.jars.packages to
                    jvm.java.lang.Class.forName(S3A_CLASS, True, jvm.java.lang.Thread.currentThread()
                                                .getContextClassLoader())
                except _spark_errors() as e:
                    raise StorageError(f"Spark cannot read {self.root}: its s3a connector (hadoop-aws and the AWS "
                                       f"SDK bundle) is not on the classpath; set s3_packages = "
                                       f"\"org.apache.hadoop:hadoop-aws:3.5.0\" where Maven Central is reachable, "
                                       f"or add the jars to Spark") from e
            self._spark = spark
        return self._spark

    def spark_path(self, path: str) -> str:
        """Return a path under the root as Spark names it (s3:// is Hadoop's s3a://)."""
        return "s3a://" + path.split("://", 1)[1] if path.startswith("s3://") else path

    # ------------------------------------------------------------ relations
    def table_relation(self, table: str) -> str:
        """Return a relation naming a stored table, resolved to a fresh Spark view by each query."""
        return '"' + TABLE_PREFIX + table.encode().hex() + '"'

    def register_filesystem_for(self, url: str) -> None:
        """Accept local files; other URLs need a Hadoop connector configured in Spark itself."""
        protocol = url.split("://", 1)[0] if "://" in url else ""
        hadoop = "s3a" if protocol == "s3" else protocol
        if protocol not in ("", "file") and not any(k.startswith(f"spark.hadoop.fs.{hadoop}")
                                                    for k in self.conf):
            raise ValidationError(f"Spark offline store: cannot read {url!r}; configure Spark's Hadoop connector "
                                  f"for {protocol}:// in [storage.offline] conf (spark.hadoop.fs.{protocol}.*)")

    def table_frame(self, table: str) -> Any:
        """Return a Spark DataFrame over a stored table's finished Parquet files (listed now, not cached)."""
        if not self.has_table(table):
            raise StorageError(f"offline table {table!r} has no rows yet")
        folder = self.spark_path(self._table_dir(table))
        reader = (self.spark.read.option("mergeSchema", "true").option("pathGlobFilter", "*.parquet")
                  .option("basePath", folder))
        frame = reader.parquet(folder)
        return frame.drop(PARTITION)

    def _files_frame(self, scan: FileScan) -> Any:
        pattern = scan.pattern
        if "://" not in pattern and self.search_path and not Path(pattern).is_absolute():
            pattern = str(Path(self.search_path) / pattern)
        self.register_filesystem_for(pattern)
        reader = self.spark.read.option("mergeSchema", "true")
        pattern = self.spark_path(pattern)
        base, _, leaf = pattern.partition("/**/")
        if leaf:  # DuckDB's recursive glob: Spark walks the folder (hive partitions included) and filters names
            reader, pattern = reader.option("pathGlobFilter", leaf), base
        if scan.file_format == "csv":
            return reader.csv(pattern, header=True, inferSchema=True)
        return reader.parquet(pattern)

    def _translate(self, sql: str, tables: Mapping[str, Any], views: list[Any]) -> str:
        """Translate contract SQL to Spark SQL over temporary views (their names appended to views)."""

        def register(frame: Any) -> str:
            name = f"__forgeml_v{uuid.uuid4().hex}"
            frame.createOrReplaceTempView(name)
            views.append(name)
            return name

        def view_for_table(name: str) -> str | None:
            if name in tables:
                value = tables[name]
                return register(value if not isinstance(value, pa.Table) else self.frame_of(value))
            if name.startswith(TABLE_PREFIX):
                return register(self.table_frame(bytes.fromhex(name[len(TABLE_PREFIX):]).decode()))
            return None

        return to_spark(sql, view_for_table, lambda scan: register(self._files_frame(scan)))

    @contextmanager
    def _views(self) -> Iterator[list[Any]]:
        """Collect what a query leaves behind (temporary view names, staged files); remove it when it is done."""
        views: list[Any] = []
        try:
            yield views
        finally:
            for name in views:
                if isinstance(name, Staged):
                    try:
                        self.fs.rm(name.path)
                    except OSError:
                        pass  # a scratch file left behind is harmless: dot folders are no table
                else:
                    self.spark.catalog.dropTempView(name)

    def frame_of(self, table: pa.Table) -> Any:
        """Return a Spark DataFrame of an Arrow table."""
        if table.num_columns == 0:
            raise ValidationError("cannot query an Arrow table without columns on Spark")
        return self.spark.createDataFrame(table)

    def entity_frame(self, entity: pa.Table, views: list[Any]) -> Any:
        """Return a Spark DataFrame of a join's entity rows (keys, times, row numbers).

        Small tables travel inside the query plan; larger ones are written as one Parquet file under the root
        (which every node sees) and read back, so no task carries millions of rows in its closure.
        """
        if entity.nbytes <= self.stage_bytes:
            return self.frame_of(entity)
        import pyarrow.parquet as pq

        folder = f"{self.root}/{STAGING}"
        path = f"{folder}/entities-{uuid.uuid4().hex}.parquet"
        views.append(Staged(path))
        try:
            self.sweep_staged(folder)
            if self.local:
                os.makedirs(folder, exist_ok=True)
                pq.write_table(entity, path + ".tmp")
                os.replace(path + ".tmp", path)
            else:  # an object store's PUT is atomic: no partial object is ever listed
                with self.fs.open(path, "wb") as f:
                    pq.write_table(entity, f)
        except (OSError, pa.ArrowException) as e:
            raise StorageError(f"cannot stage entity rows for Spark under {folder}: {e}") from e
        return self.spark.read.parquet(self.spark_path(path))

    def sweep_staged(self, folder: str) -> None:
        """Remove entity rows staged by queries whose process was killed (they hold entity keys), once a day old."""
        cutoff = time.time() - STAGED_MAX_AGE_S
        if self.local:
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(folder):
                    if entry.name.startswith("entities-") and entry.stat().st_mtime < cutoff:
                        with contextlib.suppress(FileNotFoundError):
                            os.remove(entry.path)
            return
        with contextlib.suppress(FileNotFoundError):
            for info in self.fs.ls(folder, detail=True):
                modified = info.get("LastModified") or info.get("mtime")
                stamp = modified.timestamp() if hasattr(modified, "timestamp") else modified
                if str(info["name"]).rsplit("/", 1)[-1].startswith("entities-") and stamp and stamp < cutoff:
                    with contextlib.suppress(FileNotFoundError):
                        self.fs.rm(info["name"])

    def relation_frame(self, relation: Any, views: list[Any]) -> Any:
        """Return a Spark DataFrame for a FeatureRequest relation (contract SQL or an Arrow table)."""
        if isinstance(relation, pa.Table):
            return self.frame_of(relation)
        return self.spark.sql(self._translate(f"SELECT * FROM {relation}", {}, views))

    # ------------------------------------------------------------ queries
    def to_arrow(self, frame: Any) -> pa.Table:
        """Collect a Spark DataFrame as an Arrow table with every timestamp in UTC."""
        try:
            table = frame.toArrow()
        except _spark_errors() as e:
            raise StorageError(f"Spark query failed: {' '.join(str(e).split())[:800]}") from e
        for i, field in enumerate(table.schema):
            if pa.types.is_timestamp(field.type) and field.type.tz != "UTC":
                utc = pc.cast(table.column(i), pa.timestamp("us", tz="UTC")) if field.type.tz else \
                    pc.assume_timezone(table.column(i), "UTC")
                table = table.set_column(i, field.name, utc)
        return table

    def query(self, sql: str, tables: Mapping[str, pa.Table] | None = None) -> pa.Table:
        """Run contract SQL (DuckDB's dialect, translated) with Arrow tables as views; return an Arrow table."""
        try:
            with self._views() as views:
                return self.to_arrow(self.spark.sql(self._translate(sql, dict(tables or {}), views)))
        except _spark_errors() as e:
            raise StorageError(f"Spark query failed: {' '.join(str(e).split())[:800]}") from e

    def read(self, table: str, start: Any = None, end: Any = None, columns: Sequence[str] | None = None,
             timestamp_field: str = "event_timestamp") -> pa.Table:
        """Return a table's rows with timestamp_field in [start, end) (all rows when both are None)."""
        from pyspark.sql import functions as F

        if not self.has_table(table):
            return pa.table({})
        try:
            frame = self.table_frame(table)
            ts = F.col(timestamp_field).cast("timestamp")
            if start is not None:
                frame = frame.where(ts >= F.timestamp_micros(F.lit(int(to_utc_micros(start)))))
            if end is not None:
                frame = frame.where(ts < F.timestamp_micros(F.lit(int(to_utc_micros(end)))))
            if columns:
                frame = frame.select(*[F.col(f"`{c}`") for c in columns])
            return self.to_arrow(frame)
        except _spark_errors() as e:
            raise StorageError(f"offline table {table!r}: Spark read failed: {' '.join(str(e).split())[:800]}") from e

    # ------------------------------------------------------------ point-in-time join
    def point_in_time_join(self, entity_rows: pa.Table, requests: Sequence[FeatureRequest],
                           timestamp_field: str) -> pa.Table:
        """Join each entity row with each request's newest row at or before its time within TTL, in Spark."""
        micros = entity_times(entity_rows, timestamp_field)
        if not requests:
            return entity_rows
        try:
            with self._views() as views:
                joined = self.to_arrow(self._pit_frame(entity_keys(entity_rows, requests, micros), micros,
                                                       requests, views))
        except _spark_errors() as e:
            raise StorageError(f"Spark point-in-time join failed: {' '.join(str(e).split())[:800]}") from e
        return in_entity_order(entity_rows, joined)

    def window_join(self, entity_rows: pa.Table, times_us: pa.Array, request: WindowRequest) -> pa.Table:
        """Compute a window request's aggregates as of each entity row's time, in Spark; one row per entity row."""
        from forgeml.plugins.spark.windows import window_frame

        if not request.aggregates:
            return pa.table({})
        try:
            with self._views() as views:
                joined = self.to_arrow(window_frame(self, entity_rows, times_us, request, views))
        except _spark_errors() as e:
            raise StorageError(f"Spark window aggregation failed: {' '.join(str(e).split())[:800]}") from e
        ordered = in_entity_order(entity_rows, joined)
        return ordered.select(list(range(entity_rows.num_columns, ordered.num_columns)))

    def _pit_frame(self, narrow: pa.Table, micros: pa.Array, requests: Sequence[FeatureRequest],
                   views: list[Any]) -> Any:
        """Build the Spark plan: per request, entity and feature rows in one time order per key (an as-of scan).

        Entity rows and feature rows are unioned and sorted by key and time, feature rows first at one instant
        (at-or-before includes it); each entity row takes the last feature row before it, carried whole as a
        struct so a null value in the newest row stays null. One sort, no join fan-out, as DuckDB's ASOF JOIN.
        """
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        bounds = pc.min_max(micros)
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        entities = self.entity_frame(narrow, views)
        result = entities.select(ROW)
        for i, req in enumerate(requests):
            features = self.relation_frame(req.relation, views)
            ts = F.col(f"`{req.timestamp_field}`").cast("timestamp")
            if hi is not None:
                features = features.where(ts <= F.timestamp_micros(F.lit(hi)))
            if lo is not None and req.ttl_s is not None:
                features = features.where(ts >= F.timestamp_micros(F.lit(lo - int(req.ttl_s * 1_000_000))))
            key_types = {f.name: f.dataType for f in entities.schema.fields}
            keys = [F.col(f"`{k}`").cast(key_types[k]).alias(f"__k{j}") for j, k in enumerate(req.join_keys)]
            row = F.struct(ts.alias("t"), *[F.col(f"`{f}`").alias(f"f{j}") for j, f in enumerate(req.features)])
            features = features.where(ts.isNotNull()).select(*keys, ts.alias("__t"), F.lit(None).cast("long")
                                                             .alias(ROW), row.alias("__v"))
            side = entities.select(*[F.col(f"`{k}`").alias(f"__k{j}") for j, k in enumerate(req.join_keys)],
                                   F.col("__ts").alias("__t"), F.col(ROW),
                                   F.lit(None).cast(features.schema["__v"].dataType).alias("__v"))
            order = Window.partitionBy(*[f"__k{j}" for j in range(len(req.join_keys))]) \
                .orderBy("__t", F.col(ROW).isNotNull()).rowsBetween(Window.unboundedPreceding, Window.currentRow)
            found = F.col("__last").isNotNull()
            for j in range(len(req.join_keys)):  # a null key matches nothing, as in an equi-join
                found = found & F.col(f"__k{j}").isNotNull()
            if req.ttl_s is not None:
                found = found & (F.col("__last.t") >= F.col("__t") - F.make_dt_interval(secs=F.lit(float(req.ttl_s))))
            picked = (side.unionByName(features)
                      .withColumn("__last", F.last("__v", ignorenulls=True).over(order))
                      .where(F.col(ROW).isNotNull())
                      .select(F.col(ROW).alias(f"__r{i}"),
                              *[F.when(found, F.col(f"__last.f{j}")).alias(out)
                                for j, out in enumerate(req.output_names)]))
            result = result.join(picked, result[ROW] == picked[f"__r{i}"], "left").drop(f"__r{i}")
        return result
