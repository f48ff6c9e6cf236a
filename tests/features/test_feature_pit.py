"""Point-in-time joins: a property test against a brute-force reference, TTL, several views and entities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

US = 1_000_000
T0 = datetime(2024, 3, 1, tzinfo=UTC)


def at(hours):
    return T0 + timedelta(hours=hours)


def _ts(seconds):
    import pyarrow as pa

    return pa.array([s * US for s in seconds], pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def brute_force(entity_rows, feature_rows, keys, ttl):
    """For each entity row: the value of the latest feature row with the same keys at or before it, within ttl."""
    out = []
    for e in entity_rows:
        best = None
        for f in feature_rows:
            if all(f[k] == e[k] for k in keys) and f["ts"] <= e["ts"] and (ttl is None or f["ts"] >= e["ts"] - ttl):
                if best is None or f["ts"] > best["ts"]:
                    best = f
        out.append(None if best is None else best["value"])
    return out


feature_maps = st.dictionaries(
    keys=st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 40)),  # (user, merchant, second)
    values=st.floats(-100, 100, allow_nan=False), max_size=40)
entity_lists = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 2), st.integers(0, 50)), max_size=30)


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    from forgeml.storage.offline import DuckDBOfflineStore

    store = DuckDBOfflineStore(str(tmp_path_factory.mktemp("offline")))
    yield store
    store.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(by_user=feature_maps, by_pair=feature_maps, entities=entity_lists,
       ttl_user=st.sampled_from([None, 3, 15]), ttl_pair=st.sampled_from([None, 5]))
def test_point_in_time_join_matches_brute_force(offline, by_user, by_pair, entities, ttl_user, ttl_pair):
    """Two views (one keyed by user, one by user+merchant) joined as of each entity row equal the reference."""
    import pyarrow as pa

    from forgeml.contracts import FeatureRequest

    user_rows = {}
    for (u, _m, s), v in by_user.items():
        user_rows[(u, s)] = v  # one row per (user, second): ties have no defined winner
    users = [{"user_id": u, "ts": s, "value": v} for (u, s), v in user_rows.items()]
    pairs = [{"user_id": u, "merchant_id": m, "ts": s, "value": v} for (u, m, s), v in by_pair.items()]
    ent = [{"user_id": u, "merchant_id": m, "ts": s} for u, m, s in entities]
    entity_table = pa.table({"user_id": pa.array([e["user_id"] for e in ent], pa.int64()),
                             "merchant_id": pa.array([e["merchant_id"] for e in ent], pa.int64()),
                             "event_timestamp": _ts([e["ts"] for e in ent]), "extra": [str(i) for i in range(len(ent))]})
    user_table = pa.table({"user_id": pa.array([r["user_id"] for r in users], pa.int64()),
                           "ts": _ts([r["ts"] for r in users]), "value": pa.array([r["value"] for r in users], pa.float64())})
    pair_table = pa.table({"user_id": pa.array([r["user_id"] for r in pairs], pa.int64()),
                           "merchant_id": pa.array([r["merchant_id"] for r in pairs], pa.int64()),
                           "ts": _ts([r["ts"] for r in pairs]), "value": pa.array([r["value"] for r in pairs], pa.float64())})
    requests = [
        FeatureRequest("u", user_table, ("user_id",), ("value",), ("u_value",), "ts", ttl_user),
        FeatureRequest("p", pair_table, ("user_id", "merchant_id"), ("value",), ("p_value",), "ts", ttl_pair),
    ]
    result = offline.point_in_time_join(entity_table, requests, "event_timestamp")
    assert result.num_rows == len(ent)  # every entity row is kept
    assert result.column("extra").to_pylist() == [str(i) for i in range(len(ent))]  # in order
    assert result.column("u_value").to_pylist() == brute_force(ent, users, ["user_id"], ttl_user)
    assert result.column("p_value").to_pylist() == brute_force(ent, pairs, ["user_id", "merchant_id"], ttl_pair)


def test_historical_features_from_files_keep_rows_order_and_ttl(workspace, defs):
    """Through the service: SQL transformation applied, TTL nulls, future values never used, rows kept."""
    import pandas as pd

    from forgeml.features import FeatureStore

    store = FeatureStore(workspace)
    store.apply([defs["user"], defs["stats"]])
    entity_df = pd.DataFrame({
        "user_id": [1, 1, 1, 2, 3, 9, 1],
        "event_timestamp": [at(9), at(10), at(40), at(49), at(2), at(5), at(-1)],
        "label": [0, 1, 0, 1, 0, 1, 1],
    })
    out = store.get_historical_features(entity_df, ["user_stats:clicks", "user_stats:spend_per_click"])
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["user_id", "event_timestamp", "label", "clicks", "spend_per_click"]
    assert out["label"].tolist() == [0, 1, 0, 1, 0, 1, 1]
    clicks = [None if pd.isna(v) else int(v) for v in out["clicks"]]
    # at(9): value from at(0); at(10): the at(10) row itself; at(40): at(30) within 24 h;
    # user 2 at(49): at(5) is 44 h old -> null (at(50) is the future); user 9 unknown; at(-1) before any row
    assert clicks == [1, 2, 3, None, 7, None, None]
    assert out["spend_per_click"].tolist()[:3] == [1.0, 1.0, 1.0]


def test_several_views_and_entities_through_the_service(workspace, defs, tmp_path):
    """A second entity with its own view joins alongside the first; Arrow in gives Arrow out."""
    import pandas as pd
    import pyarrow as pa

    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, FileSource

    merchants = tmp_path / "merchants.csv"
    pd.DataFrame({"merchant_id": [7, 7], "event_timestamp": [at(0).isoformat(), at(20).isoformat()],
                  "rating": [4.0, 2.0]}).to_csv(merchants, index=False)
    merchant = Entity("merchant", join_keys=["merchant_id"])
    mview = FeatureView("merchant_stats", entities=[merchant], source=FileSource(str(merchants)),
                        features=[Feature("rating")])
    store = FeatureStore(workspace)
    store.apply([defs["user"], merchant, defs["stats"], mview])
    entity = pa.table({"user_id": [1, 2], "merchant_id": [7, 7],
                       "event_timestamp": pa.array([at(25), at(10)], pa.timestamp("us", tz="UTC"))})
    out = store.get_historical_features(entity, ["user_stats:spend", "merchant_stats:rating"])
    assert isinstance(out, pa.Table)
    assert out.column("spend").to_pylist() == [2.0, 10.0]
    assert out.column("rating").to_pylist() == [2.0, 4.0]
    full = store.get_historical_features(entity, ["user_stats:spend"], full_feature_names=True)
    assert "user_stats__spend" in full.column_names


def test_offline_store_partitions_by_date_and_reads_windows(tmp_path):
    """Writes land in date=YYYY-MM-DD folders; read() returns [start, end) only."""
    import pyarrow as pa

    from forgeml.storage.offline import DuckDBOfflineStore

    store = DuckDBOfflineStore(str(tmp_path / "off"))
    rows = pa.table({"k": [1, 2, 3], "event_timestamp": pa.array([at(0), at(25), at(49)], pa.timestamp("us", tz="UTC")),
                     "v": [1.0, 2.0, 3.0]})
    assert store.write("t", rows, "event_timestamp") == 3
    assert sorted(p.name for p in (tmp_path / "off" / "t").iterdir()) == [
        "date=2024-03-01", "date=2024-03-02", "date=2024-03-03"]
    got = store.read("t", start=at(1), end=at(49))
    assert got.column("v").to_pylist() == [2.0]
    store.write("t", rows.slice(0, 1), "event_timestamp")  # appends, never overwrites
    assert store.read("t").num_rows == 4


def test_offline_store_on_an_fsspec_url():
    """The offline store works on a non-local fsspec URL (memory://) for writes, reads and joins."""
    import uuid

    import pyarrow as pa

    from forgeml.contracts import FeatureRequest
    from forgeml.storage.offline import DuckDBOfflineStore

    store = DuckDBOfflineStore(f"memory://forgeml-{uuid.uuid4().hex[:8]}")
    store.write("t", pa.table({"k": [1], "event_timestamp": pa.array([at(0)], pa.timestamp("us", tz="UTC")),
                               "v": [5.0]}), "event_timestamp")
    entity = pa.table({"k": [1, 1], "event_timestamp": pa.array([at(-1), at(1)], pa.timestamp("us", tz="UTC"))})
    out = store.point_in_time_join(
        entity, [FeatureRequest("t", store.table_relation("t"), ("k",), ("v",), ("v",), "event_timestamp",
                                timedelta(hours=2).total_seconds())], "event_timestamp")
    assert out.column("v").to_pylist() == [None, 5.0]


def test_file_source_on_an_fsspec_url(workspace):
    """A FileSource can name any fsspec URL; here an in-memory filesystem holding a Parquet file."""
    import uuid

    import fsspec
    import pandas as pd

    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, FileSource

    url = f"memory://forgeml-src-{uuid.uuid4().hex[:8]}/rows.parquet"
    with fsspec.open(url, "wb") as f:
        pd.DataFrame({"user_id": [1], "event_timestamp": [at(0)], "v": [9.5]}).to_parquet(f)
    user = Entity("user", join_keys=["user_id"])
    store = FeatureStore(workspace)
    store.apply([user, FeatureView("remote", entities=[user], source=FileSource(url), features=[Feature("v")])])
    out = store.get_historical_features(pd.DataFrame({"user_id": [1], "event_timestamp": [at(1)]}), ["remote:v"])
    assert out["v"].tolist() == [9.5]
