"""The Spark offline store on a real Spark standalone cluster (a master and a worker JVM on loopback).

One SparkSession (the driver) serves the whole test session; the data is small and local, so each test costs
a few Spark jobs. The offline-store conformance suite runs on Spark in tests/conformance.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from forgeml.errors import ForgeError, ValidationError

T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def spark_store(spark_master, tmp_path):
    """A Spark offline store over a fresh folder, on the test cluster."""
    from engine_services import spark_settings

    from forgeml.testing.process import ProviderOpener

    return ProviderOpener(str(tmp_path / "ws"), "offline_stores", "spark", spark_settings(spark_master))()


@pytest.fixture
def spark_workspace(configure, spark_master):
    """A workspace whose offline store is the Spark store on the test cluster."""
    from engine_services import spark_settings

    from forgeml.workspace import default_config_text

    settings = spark_settings(spark_master)
    conf = ", ".join(f'"{k}" = "{v}"' for k, v in settings["conf"].items())
    offline = (f'[storage.offline]\nplugin = "spark"\nmaster = "{settings["master"]}"\n'
               f'shuffle_partitions = {settings["shuffle_partitions"]}\nconf = {{ {conf} }}\n\n')
    return configure(re.sub(r"\[storage\.offline\]\n.*?\n\n", offline, default_config_text(), flags=re.S))


def test_point_in_time_joins_equal_duckdbs_on_the_same_files(spark_store):
    """Spark and DuckDB read the same Parquet tables and give identical joins (random keys, times, TTL, nulls)."""
    import numpy as np
    import pyarrow as pa

    from forgeml.contracts import FeatureRequest
    from forgeml.storage.offline import DuckDBOfflineStore

    rng = np.random.default_rng(7)
    n, users = 3000, 60
    # distinct instants per row, so "the newest row at or before" is one row for every engine
    offsets = rng.permutation(n * 10)[:n].astype("int64") * 60_000_000
    features = pa.table({"user_id": rng.integers(0, users, n), "event_timestamp":
                         pa.array(offsets, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                         "v": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
                         "label": pa.array([None if i % 13 == 0 else f"s{i}" for i in range(n)])})
    spark_store.write("hist", features, "event_timestamp")
    k = 800
    entities = pa.table({"user_id": rng.integers(0, users + 5, k), "event_timestamp":
                         pa.array(rng.integers(-3600, n * 600, k) * 1_000_000, pa.int64())
                         .cast(pa.timestamp("us", tz="UTC")), "tag": list(range(k))})
    duck = DuckDBOfflineStore(spark_store.root)
    try:
        def requests(store):
            rel = store.table_relation("hist")
            return [FeatureRequest("a", rel, ("user_id",), ("v", "label"), ("a__v", "a__label"), "event_timestamp",
                                   ttl_s=7200.0),
                    FeatureRequest("b", rel, ("user_id",), ("v",), ("b__v",), "event_timestamp")]

        expected = duck.point_in_time_join(entities, requests(duck), "event_timestamp")
        got = spark_store.point_in_time_join(entities, requests(spark_store), "event_timestamp")
    finally:
        duck.close()
    assert got.column_names == expected.column_names
    assert got.column("tag").to_pylist() == list(range(k))
    for name in ("a__label", "a__v", "b__v"):
        assert got.column(name).to_pandas().equals(expected.column(name).to_pandas()), name
    assert 0 < got.column("a__v").null_count < got.column("b__v").null_count + k  # both found and expired values


def test_a_workspace_on_spark_joins_materializes_and_transforms(spark_workspace, tmp_path):
    """File sources (SQL transformation), pushed rows, historical features and materialization all run on Spark."""
    import pandas as pd

    from forgeml.features import (
        Aggregation,
        Entity,
        Feature,
        FeatureStore,
        FeatureView,
        FileSource,
        PushSource,
    )

    folder = tmp_path / "prices" / "region=eu"
    folder.mkdir(parents=True)
    pd.DataFrame({"user_id": [1, 1, 2], "event_timestamp": [T0, T0 + timedelta(hours=2), T0],
                  "cents": [1000, 1200, 2000]}).to_parquet(folder / "part-0.parquet")
    user = Entity("user", join_keys=["user_id"])
    pushed = FeatureView("txn", entities=[user], source=PushSource("txn_push"), features=[Feature("amount")])
    filed = FeatureView("prices", entities=[user], source=FileSource(str(tmp_path / "prices")),
                        features=[Feature("price")],
                        transformation="SELECT user_id, event_timestamp, cents / 100.0 AS price FROM source")
    spend = FeatureView("spend", entities=[user], source=PushSource("spend_push"),
                        aggregations=[Aggregation("count", windows=["1h"]), Aggregation("sum", "amount", ["1h"])])
    store = FeatureStore(spark_workspace)
    assert store.offline.__class__.__name__ == "SparkOfflineStore"
    store.apply([user, pushed, filed, spend])
    store.push("txn", pd.DataFrame({"user_id": [1, 2], "event_timestamp": [T0, T0 + timedelta(hours=1)],
                                    "amount": [5.0, 7.0]}), to="offline")
    store.push("spend", pd.DataFrame({"user_id": [1, 1, 1], "event_timestamp": [T0 + timedelta(hours=2), T0,
                                      T0 + timedelta(minutes=30)], "amount": [4.0, 1.0, 2.0]}), to="offline")
    entities = pd.DataFrame({"user_id": [2, 1, 1, 3], "event_timestamp": [T0 + timedelta(hours=3),
                             T0 + timedelta(hours=1), T0 + timedelta(hours=3), T0]})
    got = store.get_historical_features(entities, ["txn:amount", "prices:price", "spend:count_1h",
                                                   "spend:amount_sum_1h"])
    assert got["user_id"].tolist() == [2, 1, 1, 3]
    assert got["amount"].tolist()[:3] == [7.0, 5.0, 5.0] and pd.isna(got["amount"].iloc[3])
    assert got["price"].tolist()[:3] == [20.0, 10.0, 12.0] and pd.isna(got["price"].iloc[3])
    # window aggregations (the 1h window starts at the 5-minute step at or before t - 1h)
    assert got["count_1h"].tolist() == [0, 2, 1, 0]
    assert got["amount_sum_1h"].tolist()[1:3] == [3.0, 4.0] and got["amount_sum_1h"].iloc[[0, 3]].isna().all()
    # materialization's newest-row query (DuckDB's QUALIFY, translated) fills the online store
    store.materialize(end=T0 + timedelta(days=1))
    online = store.get_online_features(pd.DataFrame({"user_id": [1, 2]}), ["txn:amount", "prices:price"]).to_dict()
    assert online["amount"] == [5.0, 7.0]
    assert online["price"] == [12.0, 20.0]


def test_sql_spark_cannot_run_is_one_clear_error(spark_store):
    """Bad SQL, DuckDB-only SQL (ASOF JOIN), a table with no rows and an object-store root: one-line ForgeErrors."""
    import pyarrow as pa

    from forgeml.plugins.spark.store import SparkOfflineStore

    table = pa.table({"k": [1], "t": pa.array([T0], pa.timestamp("us", tz="UTC"))})
    for sql, match in [("SELEC nonsense FROM", "invalid SQL"), ("SELECT * FROM nowhere_at_all", "Spark query failed"),
                       ("SELECT * FROM a ASOF JOIN b ON a.k = b.k AND a.t >= b.t", "Spark query failed"),
                       (f"SELECT * FROM {spark_store.table_relation('never_written')}", "has no rows yet")]:
        with pytest.raises(ForgeError, match=match) as info:
            spark_store.query(sql, {"a": table, "b": table})
        assert "\n" not in str(info.value)
    assert spark_store.query("SELECT k + 1 AS k2, t FROM a", {"a": table}).to_pylist() == [{"k2": 2, "t": T0}]
    with pytest.raises(ValidationError, match="every Spark node sees"):
        SparkOfflineStore("s3://bucket/offline")
    with pytest.raises(ValidationError, match="Hadoop connector"):
        spark_store.register_filesystem_for("gs://bucket/file.parquet")


# point-in-time joins, window aggregations, materialization and transformations: the workspace flow covers them
LOCAL_LEG = ["tests/engines/test_engines_spark.py::test_a_workspace_on_spark_joins_materializes_and_transforms",
             "tests/engines/test_engines_spark_windows.py::test_late_events_and_every_entity_row_against_the_definition"]


def test_the_spark_tests_pass_on_local_master_in_a_fresh_interpreter(tmp_path):
    """A few of these tests again on ``local[2]`` (Spark inside the process, no cluster).

    A process keeps the master of its first SparkSession, so they run in a fresh interpreter (never a fork of
    this one) with ``FORGEML_SPARK_TEST_MASTER=local[2]``; the conformance suite runs on the cluster only.
    """
    import os
    import subprocess
    import sys
    from pathlib import Path

    from engine_services import spark_installed

    if os.environ.get("FORGEML_SPARK_TEST_MASTER"):
        pytest.skip("already the local[2] leg")
    spark_installed()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "FORGEML_SPARK_TEST_MASTER": "local[2]"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--basetemp", str(tmp_path / "leg"), *LOCAL_LEG], cwd=root, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"{len(LOCAL_LEG)} passed" in proc.stdout, proc.stdout[-3000:]


def test_large_entity_tables_reach_spark_as_parquet_under_the_root(spark_store, monkeypatch):
    """Entity rows larger than ``stage_bytes`` are written as Parquet under the root and read back by Spark, not
    shipped inside its tasks (forced here with stage_bytes = 0): joins are unchanged, nothing is left behind, and
    entity rows a killed query left there over a day ago are removed."""
    import os
    import time
    from pathlib import Path

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from forgeml.contracts import FeatureRequest
    from forgeml.features import Aggregation, Entity, FeatureView, PushSource
    from forgeml.features.window_offline import historical_windows
    from forgeml.times import timestamp_micros

    rng = np.random.default_rng(11)
    times = pa.array(rng.integers(0, 7200, 400) * 1_000_000, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    spark_store.write("clicks", pa.table({"user_id": rng.integers(0, 20, 400), "event_timestamp": times,
                                          "v": rng.normal(size=400)}), "event_timestamp")
    entities = pa.table({"user_id": rng.integers(0, 25, 300), "event_timestamp": times.take(pa.array(range(300)))})
    request = [FeatureRequest("c", spark_store.table_relation("clicks"), ("user_id",), ("v",), ("c__v",),
                              "event_timestamp", ttl_s=1800.0)]
    view = FeatureView("clicks", entities=[Entity("user", join_keys=["user_id"])], source=PushSource("clicks"),
                       aggregations=[Aggregation("count", windows=["10m"]), Aggregation("last_n", "v", ["1h"], n=2)])
    micros = timestamp_micros(entities.column("event_timestamp"), "entity rows")

    def joins():
        return (spark_store.point_in_time_join(entities, request, "event_timestamp"),
                historical_windows(view, list(view.feature_names), entities, micros, spark_store))

    inline = joins()
    staged: list[str] = []
    write_table = pq.write_table
    monkeypatch.setattr(pq, "write_table", lambda table, where, **kw: (staged.append(str(where)),
                                                                        write_table(table, where, **kw))[1])
    folder = Path(spark_store.root) / ".staging"
    folder.mkdir()
    (folder / "entities-killed.parquet").write_bytes(b"rows of a query whose process died")
    os.utime(folder / "entities-killed.parquet", (time.time() - 2 * 86_400,) * 2)
    (folder / "entities-running.parquet").write_bytes(b"rows of another process's query in flight")
    spark_store.stage_bytes = 0
    assert joins() == inline
    assert len(staged) == 2 and all("/.staging/" in p for p in staged)
    assert [p.name for p in folder.iterdir()] == ["entities-running.parquet"]  # the day-old leftover is swept
    assert spark_store._tables() == ["clicks"]  # what subject search and erasure walk: not the scratch folder
