"""The Spark offline store with an s3:// root, against moto's server mode (an in-memory S3 mock; no real S3 here).

Writes and listings go through s3fs and are checked for real. Spark's own reads need Hadoop's s3a connector
(hadoop-aws and the AWS SDK bundle), which pyspark's wheel lacks and which Spark downloads from Maven Central
(``s3_packages``); where neither is there, as here, the test checks that the plugin configures s3a from its
settings and the environment, and that a read is one clear error naming the fix.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from forgeml.errors import ForgeError

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _open(settings, tmp_path):
    from forgeml.testing.process import ProviderOpener

    return ProviderOpener(str(tmp_path / "ws"), "offline_stores", "spark", settings)()


def test_an_s3_root_configures_s3a_and_writes_through_s3fs(s3_endpoint, tmp_path, monkeypatch):
    """Endpoint, path style, region, credentials from the environment and the opt-in jars become s3a settings;
    pushed rows land in the bucket without starting Spark."""
    import pyarrow as pa

    bucket = s3_endpoint.new_bucket()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-env")
    store = _open({"root": f"s3a://{bucket}/off", "endpoint_url": s3_endpoint.endpoint_url, "region": "eu-west-1",
                   "s3_packages": "org.apache.hadoop:hadoop-aws:3.5.0",
                   "conf": {"spark.hadoop.fs.s3a.connection.maximum": "8"}}, tmp_path)
    assert {k: v for k, v in store.conf.items() if "s3a" in k or "packages" in k} == {
        "spark.hadoop.fs.s3a.path.style.access": "true", "spark.hadoop.fs.s3a.endpoint.region": "eu-west-1",
        "spark.hadoop.fs.s3a.endpoint": s3_endpoint.endpoint_url,
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false", "spark.hadoop.fs.s3a.access.key": "from-env",
        "spark.hadoop.fs.s3a.secret.key": "secret-env", "spark.jars.packages": "org.apache.hadoop:hadoop-aws:3.5.0",
        "spark.hadoop.fs.s3a.connection.maximum": "8"}
    assert store.spark_path(store._table_dir("t")) == f"s3a://{bucket}/off/t"
    rows = pa.table({"k": [1, 2], "event_timestamp": pa.array([T0, T0], pa.timestamp("us", tz="UTC"))})
    assert store.write("t", rows, "event_timestamp") == 2
    assert store.has_table("t") and store._spark is None
    assert s3_endpoint.filesystem().glob(f"{bucket}/off/t/date=2024-03-01/*.parquet")


def test_without_the_s3a_jars_a_read_is_one_clear_error(spark_master, s3_endpoint, tmp_path):
    """pyspark's wheel has no s3a connector: reading an s3:// root says which jars are missing and how to add them."""
    import pyarrow as pa
    from engine_services import spark_settings

    bucket = s3_endpoint.new_bucket()
    store = _open({**spark_settings(spark_master), "root": f"s3://{bucket}/off",
                   "endpoint_url": s3_endpoint.endpoint_url}, tmp_path)
    store.write("t", pa.table({"k": [1], "event_timestamp": pa.array([T0], pa.timestamp("us", tz="UTC"))}),
                "event_timestamp")
    with pytest.raises(ForgeError, match="hadoop-aws") as info:
        store.query(f"SELECT * FROM {store.table_relation('t')}")
    assert "s3_packages" in str(info.value) and "\n" not in str(info.value)
