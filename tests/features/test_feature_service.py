"""Materialization, online reads with freshness, push, on-demand views and the one transformation path."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def at(hours):
    return T0 + timedelta(hours=hours)


class Captured:
    """A throwaway plugin recording feature-materialized events."""

    def __init__(self):
        self.events = []

    from forgeml import hookimpl

    @hookimpl
    def forgeml_on_features_materialized(self, view, start, end, rows, workspace):
        self.events.append((view, start, end, rows))


def test_materialize_is_incremental_and_idempotent(workspace, defs):
    """First run copies the newest row per user; a repeat copies nothing; a new window only the new rows."""
    from forgeml.features import FeatureStore

    captured = Captured()
    workspace.plugins.pm.register(captured, name="captured-events")
    try:
        store = FeatureStore(workspace)
        store.apply([defs["user"], defs["stats"]])
        first = store.materialize(end=at(20))
        assert first == [{"view": "user_stats", "start": None, "end": at(20).isoformat(), "rows": 3}]
        assert captured.events == [("user_stats", None, at(20).isoformat(), 3)]
        state = store.online.read("user_stats", [(1,), (2,), (3,)], ["clicks"]).column("clicks").to_pylist()
        assert state == [2, 10, 7]
        assert store.materialize(end=at(20))[0]["rows"] == 0  # from the watermark: nothing new
        second = store.materialize(end=at(60))
        assert second[0]["rows"] == 2 and second[0]["start"] == at(20).isoformat()
        again = store.materialize(start=at(0), end=at(60))  # an explicit repeat leaves the same state
        assert again[0]["rows"] == 3
        state = store.online.read("user_stats", [(1,), (2,), (3,)], ["clicks"]).column("clicks").to_pylist()
        assert state == [3, 20, 7]
    finally:
        workspace.plugins.pm.unregister(name="captured-events")


def test_online_features_with_freshness_and_ttl(workspace, defs):
    """Values come back per entity row with event times and ages; a value older than the TTL is null."""
    import pandas as pd

    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, PushSource

    store = FeatureStore(workspace)
    user = defs["user"]
    live = FeatureView("live", entities=[user], source=PushSource("live_push"), features=[Feature("score")],
                       ttl=timedelta(minutes=10))
    store.apply([user, live, Entity("unused")])
    now = pd.Timestamp.now(tz="UTC")
    store.push("live", pd.DataFrame({"user_id": [1, 2], "event_timestamp": [now - pd.Timedelta(minutes=1),
                                                                             now - pd.Timedelta(hours=1)],
                                     "score": [0.5, 0.9]}))
    got = store.get_online_features([{"user_id": 1}, {"user_id": 2}, {"user_id": 3}], ["live:score"])
    assert got.to_dict() == {"user_id": [1, 2, 3], "score": [0.5, None, None]}
    age = got.freshness["score"]
    assert 50 < age[0] < 120 and age[1] is None and age[2] is None
    assert got.event_timestamps["score"][0] == (now - pd.Timedelta(minutes=1)).to_pydatetime()
    df = got.to_df()
    assert list(df.columns) == ["user_id", "score"] and len(df) == 3


def test_push_writes_online_and_offline_through_the_transformation(workspace):
    """One push call: the online value and the training-set value are the same transformed number."""
    import pandas as pd

    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, PushSource

    user = Entity("user", join_keys=["user_id"])
    view = FeatureView("txn", entities=[user], source=PushSource("txn_push"),
                       features=[Feature("amount_usd"), Feature("is_big", "bool")],
                       transformation="SELECT user_id, event_timestamp, amount_cents / 100.0 AS amount_usd, "
                                      "amount_cents > 10000 AS is_big FROM source")
    store = FeatureStore(workspace)
    store.apply([user, view])
    rows = pd.DataFrame({"user_id": [1, 2, 1], "event_timestamp": [at(0), at(1), at(2)],
                         "amount_cents": [500, 25000, 1234]})
    assert store.push("txn", rows) == 3
    online = store.get_online_features({"user_id": [1, 2]}, ["txn:amount_usd", "txn:is_big"]).to_dict()
    assert online == {"user_id": [1, 2], "amount_usd": [12.34, 250.0], "is_big": [False, True]}
    offline = store.get_historical_features(pd.DataFrame({"user_id": [1, 2], "event_timestamp": [at(3), at(3)]}),
                                            ["txn:amount_usd", "txn:is_big"])
    assert offline["amount_usd"].tolist() == online["amount_usd"]
    assert offline["is_big"].tolist() == online["is_big"]
    status = {s.view: s for s in store.status()}
    assert status["txn"].rows_pushed == 3 and status["txn"].last_event == at(2)


def _raw_rows():
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    n = 400
    return pd.DataFrame({"user_id": rng.integers(0, 50, n),
                         "event_timestamp": [at(float(h)) for h in rng.uniform(0, 100, n)],
                         "price": rng.uniform(1, 1000, n), "qty": rng.integers(1, 20, n)})


def basket_features(df):
    """A vectorized pandas transformation shared by every path."""
    import numpy as np
    import pandas as pd

    return pd.DataFrame({"user_id": df["user_id"], "event_timestamp": df["event_timestamp"],
                         "total": df["price"] * df["qty"], "log_price": np.log1p(df["price"]) / 3.0})


@pytest.mark.parametrize("kind", ["sql", "python"])
def test_one_transformation_path_offline_online_and_push_agree(workspace, kind):
    """The same raw rows through offline retrieval, materialize+online and push give identical values."""
    import pandas as pd

    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, FileSource, PushSource

    raw = _raw_rows()
    path = workspace.root / "raw.parquet"
    raw.to_parquet(path)
    transformation = (basket_features if kind == "python" else
                      "SELECT user_id, event_timestamp, price * qty AS total, ln(1 + price) / 3.0 AS log_price "
                      "FROM source")
    user = Entity("user", join_keys=["user_id"])
    feats = [Feature("total"), Feature("log_price")]
    batch = FeatureView("basket_batch", entities=[user], source=FileSource(str(path)), features=feats,
                        transformation=transformation)
    stream = FeatureView("basket_stream", entities=[user], source=PushSource("basket_push"), features=feats,
                         transformation=transformation)
    store = FeatureStore(workspace)
    store.apply([user, batch, stream])
    store.materialize(end=at(200))
    for start in range(0, len(raw), 100):  # streamed in several pushes
        store.push("basket_stream", raw.iloc[start:start + 100])
    users = sorted(raw["user_id"].unique().tolist())
    entity_df = pd.DataFrame({"user_id": users, "event_timestamp": [at(150)] * len(users)})
    hist = store.get_historical_features(entity_df, ["basket_batch:total", "basket_batch:log_price"])
    hist_stream = store.get_historical_features(entity_df, ["basket_stream:total", "basket_stream:log_price"])
    online = store.get_online_features({"user_id": users}, ["basket_batch:total", "basket_batch:log_price"])
    online_stream = store.get_online_features({"user_id": users}, ["basket_stream:total", "basket_stream:log_price"])
    for col in ("total", "log_price"):
        assert hist[col].tolist() == online.to_dict()[col]  # identical, not approximately equal
        assert hist_stream[col].tolist() == online_stream.to_dict()[col]
        assert hist[col].tolist() == hist_stream[col].tolist()


def test_on_demand_view_is_the_same_offline_and_online(workspace, defs):
    """An on-demand feature from request data plus stored features computes the same value on both paths."""
    import pandas as pd

    from forgeml.features import Feature, FeatureStore, OnDemandFeatureView, RequestSource

    def ratio(df):
        return pd.DataFrame({"spend_vs_cart": df["spend"] / df["cart_value"]})

    stats = dataclasses.replace(defs["stats"], ttl=None)  # online TTL would count from the wall clock
    odfv = OnDemandFeatureView("cart", sources=[stats, RequestSource("request", [("cart_value", "float64")])],
                               features=[Feature("spend_vs_cart")], transformation=ratio)
    store = FeatureStore(workspace)
    store.apply([defs["user"], stats, odfv])
    store.materialize(end=at(11))
    offline = store.get_historical_features(
        pd.DataFrame({"user_id": [1, 3], "event_timestamp": [at(10.5), at(10.5)], "cart_value": [4.0, 2.0]}),
        ["cart:spend_vs_cart"])
    assert list(offline.columns) == ["user_id", "event_timestamp", "cart_value", "spend_vs_cart"]
    assert offline["spend_vs_cart"].tolist() == [0.5, 3.5]
    online = store.get_online_features([{"user_id": 1, "cart_value": 4.0}, {"user_id": 3, "cart_value": 2.0}],
                                       ["cart:spend_vs_cart"]).to_dict()
    assert online["spend_vs_cart"] == offline["spend_vs_cart"].tolist()


def test_status_flags_stale_views(workspace, defs):
    """A view whose newest value is older than its SLA is stale; a fresh push clears it."""
    import pandas as pd

    from forgeml.features import Feature, FeatureStore, FeatureView, PushSource

    store = FeatureStore(workspace)
    fresh = FeatureView("fresh", entities=[defs["user"]], source=PushSource("fresh_push"), features=[Feature("x")],
                        freshness_sla=timedelta(minutes=5))
    store.apply([defs["user"], defs["stats"], fresh])
    store.materialize(end=at(60))
    store.push("fresh", pd.DataFrame({"user_id": [1], "event_timestamp": [pd.Timestamp.now(tz="UTC")], "x": [1.0]}))
    status = {s.view: s for s in store.status()}
    assert status["user_stats"].stale and status["user_stats"].last_event == at(50)
    assert not status["fresh"].stale and status["fresh"].age_s < 60
    later = datetime.now(UTC) + timedelta(minutes=10)
    assert {s.view: s.stale for s in store.status(now=later)}["fresh"] is True


def test_nanosecond_timestamps_are_accepted(workspace, defs):
    """pandas' nanosecond timestamps are truncated to microseconds, not refused."""
    import pandas as pd

    from forgeml.features import Feature, FeatureStore, FeatureView, PushSource

    view = FeatureView("ns", entities=[defs["user"]], source=PushSource("ns_push"), features=[Feature("x")])
    store = FeatureStore(workspace)
    store.apply([defs["user"], view])
    stamp = pd.Timestamp("2024-03-01T00:00:00.000001999", tz="UTC")
    assert store.push("ns", pd.DataFrame({"user_id": [1], "event_timestamp": [stamp], "x": [2.0]})) == 1
    out = store.get_historical_features(pd.DataFrame({"user_id": [1], "event_timestamp": [stamp]}), ["ns:x"])
    assert out["x"].tolist() == [2.0]
