"""Apache Spark as the offline feature store: ``[storage.offline] plugin = "spark"``.

The Parquet layout is the DuckDB store's (date-partitioned tables under one root), so a workspace switches
engines without moving data. Point-in-time joins, window aggregations and reads run on Spark (``local[N]`` in this process or a
standalone/YARN/Kubernetes cluster named by ``master``); SQL in the offline-store contract's dialect is
translated to Spark SQL with sqlglot (see :mod:`forgeml.plugins.spark.dialect`). ``pip install 'forgeml[spark]'``
brings pyspark and sqlglot; Spark needs Java 17 or newer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgeml import hookimpl
from forgeml.config import setting


@dataclass
class SparkOfflineSettings:
    """Settings of the Spark offline store."""

    root: str = setting(".forgeml/features/offline",
                        "Where Parquet tables live: a folder relative to the workspace; on a cluster, a path "
                        "every Spark node sees at the same place (a shared mount).")
    master: str = setting("local[2]", "Spark master URL: local[N] runs Spark inside this process with N "
                                      "threads; spark://HOST:7077 uses a standalone cluster.")
    app_name: str = setting("forgeml", "Application name the cluster's UI shows.")
    shuffle_partitions: int = setting(8, "spark.sql.shuffle.partitions: partitions after a join (Spark's "
                                         "default of 200 suits much larger data).")
    conf: dict[str, str] = setting({}, "Extra Spark settings, e.g. { \"spark.executor.memory\" = \"4g\", "
                                       "\"spark.driver.host\" = \"10.0.0.5\" }.")


def _offline(settings: SparkOfflineSettings, workspace: Any) -> Any:
    from forgeml.plugins.spark.store import SparkOfflineStore

    root = settings.root if "://" in settings.root else str(workspace.resolve(settings.root))
    conf = {"spark.sql.shuffle.partitions": str(settings.shuffle_partitions), **settings.conf}
    return SparkOfflineStore(root, master=settings.master, app_name=settings.app_name, conf=conf,
                             search_path=str(workspace.root))


@hookimpl
def forgeml_register_offline_stores(register):
    """Offer the Spark offline store."""
    register("spark", _offline, settings=SparkOfflineSettings,
             description="date-partitioned Parquet queried with Apache Spark (local[N] or a cluster)")
