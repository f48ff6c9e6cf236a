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
from forgeml.config import reveal, setting
from forgeml.plugins.s3 import S3Connection


@dataclass
class SparkOfflineSettings(S3Connection):
    """Settings of the Spark offline store (the S3 ones apply to an s3:// root)."""

    root: str = setting(".forgeml/features/offline",
                        "Where Parquet tables live: a folder relative to the workspace; on a cluster, a path "
                        "every Spark node sees at the same place (a shared mount); or s3://BUCKET/PREFIX, read by "
                        "Spark's s3a connector (hadoop-aws jars, see s3_packages).")
    master: str = setting("local[2]", "Spark master URL: local[N] runs Spark inside this process with N "
                                      "threads; spark://HOST:7077 uses a standalone cluster.")
    app_name: str = setting("forgeml", "Application name the cluster's UI shows.")
    shuffle_partitions: int = setting(8, "spark.sql.shuffle.partitions: partitions after a join (Spark's "
                                         "default of 200 suits much larger data).")
    conf: dict[str, str] = setting({}, "Extra Spark settings, e.g. { \"spark.executor.memory\" = \"4g\", "
                                       "\"spark.driver.host\" = \"10.0.0.5\" }.")
    s3_packages: str = setting("", "For an s3:// root: Maven coordinates Spark downloads when it starts "
                                   "(spark.jars.packages), e.g. \"org.apache.hadoop:hadoop-aws:3.5.0\" for pyspark "
                                   "4's Hadoop 3.5 (needs Maven Central). Empty: hadoop-aws and the AWS SDK bundle "
                                   "must already be on Spark's classpath.")


def s3a_conf(settings: SparkOfflineSettings) -> dict[str, str]:
    """Return the Spark settings that point Hadoop's s3a connector at the configured endpoint and credentials."""
    import os

    from forgeml.plugins.s3 import _endpoint

    conf = {"spark.hadoop.fs.s3a.path.style.access": str(settings.path_style).lower(),
            "spark.hadoop.fs.s3a.endpoint.region": settings.region}
    parts = _endpoint(settings, "offline store 'spark'")
    if parts is not None:
        conf["spark.hadoop.fs.s3a.endpoint"] = parts.geturl()
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(parts.scheme == "https").lower()
    # keys given in the settings, else the environment's (executors on other machines do not see the driver's)
    key = reveal(settings.access_key_id) or os.environ.get("AWS_ACCESS_KEY_ID")
    secret = reveal(settings.secret_access_key) or os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        conf.update({"spark.hadoop.fs.s3a.access.key": key, "spark.hadoop.fs.s3a.secret.key": secret})
        if os.environ.get("AWS_SESSION_TOKEN") and not settings.access_key_id:
            conf.update({"spark.hadoop.fs.s3a.session.token": os.environ["AWS_SESSION_TOKEN"],
                         "spark.hadoop.fs.s3a.aws.credentials.provider":
                             "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"})
    if settings.s3_packages:
        conf["spark.jars.packages"] = settings.s3_packages
    return conf


def _offline(settings: SparkOfflineSettings, workspace: Any) -> Any:
    from forgeml.plugins.spark.store import SparkOfflineStore

    root = settings.root if "://" in settings.root else str(workspace.resolve(settings.root))
    conf = {"spark.sql.shuffle.partitions": str(settings.shuffle_partitions)}
    fs = None
    if root.startswith(("s3://", "s3a://")):
        from forgeml.plugins.s3 import filesystem

        root = "s3://" + root.split("://", 1)[1]
        fs = filesystem(settings, root, "offline store 'spark'")  # writes and listings; Spark reads via s3a
        conf.update(s3a_conf(settings))
    return SparkOfflineStore(root, master=settings.master, app_name=settings.app_name,
                             conf={**conf, **settings.conf}, search_path=str(workspace.root), fs=fs)


@hookimpl
def forgeml_register_offline_stores(register):
    """Offer the Spark offline store."""
    register("spark", _offline, settings=SparkOfflineSettings,
             description="date-partitioned Parquet queried with Apache Spark (local[N] or a cluster)")
