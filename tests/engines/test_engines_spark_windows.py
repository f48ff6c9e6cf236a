"""Window aggregations on the Spark offline store (a real standalone master and worker on loopback).

Spark compiles the engine-neutral WindowRequest itself (a range join and a group-by); DuckDB runs core's
window query. Both read the same Parquet files, so every value can be compared.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))
from window_support import AGGREGATIONS, T0, event_table, expected, micros, same  # noqa: E402

from forgeml.features import Aggregation, Entity, FeatureView, PushSource  # noqa: E402

CARD = Entity("card", join_keys=["card_id"])
EXTRA = [Aggregation("min", "qty", ["1h"], dtype="int32"), Aggregation("max", "seen", ["10m"], dtype="timestamp"),
         Aggregation("first", "merchant", ["1h"], dtype="string"), Aggregation("last", "flag", ["10m"], dtype="bool"),
         Aggregation("count_distinct", "qty", ["7d"], dtype="int32"), Aggregation("last_n", "amount", ["10m"], n=2)]


@pytest.fixture
def spark_store(spark_master, tmp_path):
    """A Spark offline store over a fresh folder, on the test cluster."""
    from engine_services import spark_settings

    from forgeml.testing.process import ProviderOpener

    return ProviderOpener(str(tmp_path / "ws"), "offline_stores", "spark", spark_settings(spark_master))()


def _events_table(raw: list[tuple]) -> object:
    """Events with every aggregated dtype: float amount, string merchant, int32 qty, timestamp seen, bool flag."""
    import pyarrow as pa

    events = [{"card_id": k, "event_timestamp": T0 + timedelta(seconds=s),
               "amount": None if a is None else float(a), "merchant": m} for k, s, a, m in raw]
    table = event_table(events)
    qty = [None if a is None else a % 4 for _, _, a, _ in raw]
    return (table.set_column(0, "card_id", pa.array([k for k, *_ in raw], pa.int64()))
            .append_column("qty", pa.array(qty, pa.int32()))
            .append_column("seen", pa.array([T0 + timedelta(seconds=s // 7) if a is not None else None
                                             for _, s, a, _ in raw], pa.timestamp("us", tz="UTC")))
            .append_column("flag", pa.array([None if m is None else m < "b" for *_, m in raw], pa.bool_())))


def _both_engines(spark_store, view: FeatureView, events, entities) -> tuple:
    """Return the window features of entity rows computed by DuckDB and by Spark over the same stored events."""
    from forgeml.features.window_offline import historical_windows
    from forgeml.storage.offline import DuckDBOfflineStore
    from forgeml.times import timestamp_micros

    spark_store.write(view.name, events, "event_timestamp")
    duck = DuckDBOfflineStore(spark_store.root)
    micros_ = timestamp_micros(entities.column("event_timestamp"), "entity rows")
    features = list(view.feature_names)
    try:
        expected_ = historical_windows(view, features, entities, micros_, duck)
    finally:
        duck.close()
    return expected_, historical_windows(view, features, entities, micros_, spark_store)


raw_events = st.lists(st.tuples(st.sampled_from([1, 2, 3, None]), st.integers(0, 3 * 3600),
                                st.one_of(st.none(), st.integers(-30, 30)), st.sampled_from(["a", "b", "c", None])),
                      min_size=0, max_size=80)


@settings(max_examples=5, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(raw=raw_events, reads=st.lists(st.tuples(st.sampled_from([1, 2, 3, 4, None]), st.integers(-600, 4 * 3600)),
                                      min_size=1, max_size=40))
def test_spark_windows_equal_duckdbs_on_generated_events(spark_store, raw, reads):
    """Every aggregation and window, events in any order (late ones included), null keys and values, unknown keys:
    Spark's values equal DuckDB's for every entity row, and every row comes back in its order."""
    import pyarrow as pa

    view = FeatureView(f"w{abs(hash((tuple(raw), tuple(reads)))) % 10**9}", entities=[CARD],
                       source=PushSource("events"), aggregations=[*AGGREGATIONS, *EXTRA])
    entities = pa.table({"card_id": pa.array([k for k, _ in reads], pa.int64()),
                         "event_timestamp": pa.array([T0 + timedelta(seconds=s) for _, s in reads],
                                                     pa.timestamp("us", tz="UTC"))})
    duck, spark = _both_engines(spark_store, view, _events_table(raw) if raw else _events_table([(1, 0, 1, "a")]),
                                entities)
    assert spark.column_names == duck.column_names == list(view.feature_names)
    assert spark.num_rows == duck.num_rows == len(reads)
    for name in duck.column_names:
        for i, (want, got) in enumerate(zip(duck.column(name).to_pylist(), spark.column(name).to_pylist())):
            assert same(got, want), (name, reads[i], got, want)


def test_late_events_and_every_entity_row_against_the_definition(spark_store):
    """Events written out of time order in two batches (the second much later) give the definition's values
    on Spark, for entity rows before, between and after them, repeated rows and a key with no events."""
    import random

    import pyarrow as pa

    from forgeml.features.aggregations import window_features

    rnd = random.Random(3)
    events = [{"card_id": rnd.randint(1, 2), "event_timestamp": T0 + timedelta(seconds=rnd.randint(0, 7200)),
               "amount": None if rnd.random() < 0.1 else float(rnd.randint(-5, 40)),
               "merchant": rnd.choice(["a", "b", None])} for _ in range(300)]
    view = FeatureView("late", entities=[CARD], source=PushSource("late"), aggregations=AGGREGATIONS)
    spark_store.write("late", event_table(events[200:]), "event_timestamp")  # newer batch lands first
    reads = [(k, T0 + timedelta(seconds=s)) for k in (1, 2, 9) for s in (-60, 0, 1800, 3599, 3600, 7200, 9000)]
    reads += reads[:3]
    entities = pa.table({"card_id": pa.array([k for k, _ in reads], pa.int64()),
                         "event_timestamp": pa.array([t for _, t in reads], pa.timestamp("us", tz="UTC"))})
    _, got = _both_engines(spark_store, view, event_table(events[:200]), entities)
    assert got.num_rows == len(reads)
    for feature in window_features(view.aggregations):
        for i, (key, t) in enumerate(reads):
            want = expected(events, key, micros(t), feature)
            assert same(got.column(feature.name)[i].as_py(), want), (feature.name, key, t, want)
