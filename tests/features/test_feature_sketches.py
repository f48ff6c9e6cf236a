"""approx_count_distinct: one HyperLogLog sketch online and offline, with its error bound, and its definitions."""

from __future__ import annotations

import random
import sys
import uuid
from datetime import timedelta

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from window_support import T0, micros

from forgeml.errors import ValidationError
from forgeml.features import Aggregation, Entity, FeatureView, PushSource

CARD = Entity("card", join_keys=["card_id"])


def test_online_and_offline_give_the_same_estimate_within_the_error(workspace):
    """Thousands of distinct values pushed out of order, in batches: online == offline exactly, near the truth."""
    import pandas as pd

    from forgeml.features.service import store_for
    from forgeml.features.window_online import WindowWriter, read_window_rows

    store = store_for(workspace)
    name = f"s{uuid.uuid4().hex[:8]}"
    view = FeatureView(name, entities=[CARD], source=PushSource(name), allowed_lateness=7200, aggregations=[
        Aggregation("approx_count_distinct", "merchant", ["1h", "1d"], dtype="string"),
        Aggregation("approx_count_distinct", "user", ["1d"], dtype="int64", lg_k=14),
        Aggregation("count_distinct", "merchant", ["1d"], dtype="string")])
    store.apply([view])
    rnd = random.Random(7)
    n = 12_000
    seconds = [rnd.randint(0, 6 * 3600) for _ in range(n)]
    events = pa.table({"card_id": [1 + i % 2 for i in range(n)],
                       "event_timestamp": pa.array([T0 + timedelta(seconds=s) for s in seconds],
                                                   pa.timestamp("us", tz="UTC")),
                       "merchant": [f"m{rnd.randint(0, 4000)}" for _ in range(n)],
                       "user": [rnd.randint(0, 9000) for _ in range(n)]})
    store.push(name, events, to="offline")
    arrival = sorted(range(n), key=lambda i: seconds[i] + rnd.randint(0, 1800))  # up to 30 minutes late
    writer = WindowWriter(view, store.online)
    for start in range(0, n, 1000):
        writer.apply(events.take(arrival[start:start + 1000]))
    plan = store.tile_plan(store.get_feature_view(name))
    at = T0 + timedelta(seconds=6 * 3600)
    features = list(view.feature_names)
    online, _ = read_window_rows(view, plan, store.online, [(1,), (2,)], features, micros(at))
    offline = store.get_historical_features(pd.DataFrame({"card_id": [1, 2], "event_timestamp": [at, at]}),
                                            [f"{name}:{f}" for f in features])
    for j, feature in enumerate(features):
        assert list(online[j]) == offline[feature].tolist(), feature
    exact = offline["merchant_count_distinct_1d"].tolist()
    for i in range(2):
        truth_user = len({u for u, c in zip(events.column("user").to_pylist(), events.column("card_id").to_pylist())
                          if c == i + 1})
        # three standard errors: 1.04 / sqrt(2^12) is 1.6%, at lg_k 14 0.8%
        assert abs(offline["merchant_approx_count_distinct_1d"][i] - exact[i]) <= 0.049 * exact[i]
        assert abs(offline["user_approx_count_distinct_1d"][i] - truth_user) <= 0.025 * truth_user


def test_sketch_state_survives_a_reload_and_stays_small(workspace):
    """Tiles keep sketches, not values: the stored state of 20k distinct values is a few KiB per tile."""
    from forgeml.features.service import store_for
    from forgeml.features.tiles import dump_state, load_state, read_features, state_view

    store = store_for(workspace)
    view = FeatureView("big", entities=[CARD], source=PushSource("big"),
                       aggregations=[Aggregation("approx_count_distinct", "merchant", ["10m"], dtype="string")])
    store.apply([view])
    n = 20_000
    store.push("big", pa.table({"card_id": [1] * n, "merchant": [f"m{i}" for i in range(n)],
                                "event_timestamp": pa.array([T0 + timedelta(microseconds=i) for i in range(n)],
                                                            pa.timestamp("us", tz="UTC"))}), to="online")
    plan = store.tile_plan(store.get_feature_view("big"))
    [hit] = store.online.read_rows(state_view("big"), [(1,)])
    text = hit[1]["state"]
    assert len(text) < 8_000  # one tile's sketch (20k exact values would take over 100 KB)
    state = load_state(plan, text)
    at = micros(T0) + 60_000_000
    value = read_features(plan, state, ["merchant_approx_count_distinct_10m"], at)[0]
    assert abs(value - n) <= 0.049 * n
    assert read_features(plan, load_state(plan, dump_state(plan, state)), ["merchant_approx_count_distinct_10m"],
                         at)[0] == value


@pytest.mark.parametrize("make, message", [
    (lambda: Aggregation("approx_count_distinct", "m", lg_k=3), "lg_k= between 4 and 21"),
    (lambda: Aggregation("approx_count_distinct", "m", lg_k=22), "lg_k= between 4 and 21"),
    (lambda: Aggregation("count_distinct", "m", lg_k=12), "lg_k= is only for approx_count_distinct"),
    (lambda: Aggregation("approx_count_distinct"), "needs column="),
])
def test_bad_sketch_definitions_are_one_line_errors(make, message):
    """lg_k out of range, or on another function, says what to fix."""
    with pytest.raises(ValidationError, match=message):
        make()


def test_a_missing_datasketches_package_is_a_one_line_error(monkeypatch):
    """Without the package, using a sketch says how to install it."""
    from forgeml.features.sketches import new_sketch

    monkeypatch.setitem(sys.modules, "datasketches", None)
    with pytest.raises(ValidationError, match="pip install datasketches"):
        new_sketch(12)


@settings(max_examples=200, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(function=st.sampled_from(["count", "sum", "mean", "min", "max", "stddev", "count_distinct",
                                 "approx_count_distinct", "last_n", "first", "last", "median", ""]),
       column=st.one_of(st.none(), st.sampled_from(["amount", "merchant", "bad name", ""])),
       windows=st.one_of(st.sampled_from(["10m", "1h", "7d"]), st.lists(st.sampled_from(["10m", "600s", "1h", "2x", 0]),
                                                                      max_size=3)),
       dtype=st.sampled_from(["float64", "int64", "string", "bool", "timestamp", "list[int64]", "nope"]),
       n=st.sampled_from([0, 1, 5, 1001, -1]), lg_k=st.sampled_from([0, 4, 12, 21, 22, 3, -1]))
def test_any_aggregation_definition_is_valid_or_a_validation_error(function, column, windows, dtype, n, lg_k):
    """Fuzzed definitions either build (and survive the registry's round trip) or raise one ValidationError."""
    try:
        agg = Aggregation(function, column, windows, dtype, n, "", lg_k)
    except ValidationError as e:
        assert "\n" not in str(e)
        return
    assert Aggregation.from_spec(agg.to_spec()) == agg
    if agg.function == "approx_count_distinct":
        assert 4 <= agg.lg_k <= 21
    else:
        assert agg.lg_k == 0
