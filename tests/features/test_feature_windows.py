"""Window aggregations: offline against a brute-force model, online tiles, and online == offline as a property."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from window_support import AGGREGATIONS, T0, US, event_table, expected, micros, same

from forgeml.errors import ValidationError
from forgeml.features import Aggregation, Entity, FeatureView, FileSource, PushSource
from forgeml.features.aggregations import hop_for, parse_window, window_features

CARD = Entity("card", join_keys=["card_id"])


def random_events(seed: int, n: int, span_s: int, keys: int = 3) -> list[dict]:
    rnd = random.Random(seed)
    return [{"card_id": rnd.randint(1, keys), "event_timestamp": T0 + timedelta(seconds=rnd.randint(0, span_s)),
             "amount": None if rnd.random() < 0.05 else float(rnd.randint(-20, 50)),
             "merchant": rnd.choice(["a", "b", "c", "d", None])} for _ in range(n)]


@pytest.fixture
def store(workspace):
    from forgeml.features.service import store_for

    return store_for(workspace)


def file_view(workspace, events, name="txn", aggregations=AGGREGATIONS):
    folder = workspace.root / "data" / name
    folder.mkdir(parents=True)
    import pyarrow.parquet as pq

    pq.write_table(event_table(events), folder / "events.parquet")
    return FeatureView(name, entities=[CARD], source=FileSource(str(folder)), aggregations=aggregations)


class TestDefinitions:
    def test_windows_parse_and_name_features(self):
        """Windows accept 10m/1h/7d/30d and timedeltas; each (aggregation, window) is one named feature."""
        assert [parse_window(w) for w in ("10m", "1h", "7d", "30d", timedelta(minutes=5))] == [
            600, 3600, 604800, 2592000, 300]
        names = [w.name for w in window_features(AGGREGATIONS)]
        assert names[:4] == ["count_10m", "count_1h", "amount_sum_10m", "amount_sum_1h"]
        assert "merchant_last3_1h" in names
        assert hop_for(600) == 60 and hop_for(3600) == 300 and hop_for(7 * 86400) == 21600

    def test_derived_dtypes(self):
        """Counts are int64, moments float64, last_n a list of the column's dtype, min/max keep it."""
        view = FeatureView("v", entities=[CARD], aggregations=AGGREGATIONS)
        dtypes = {f.name: f.dtype for f in view.features}
        assert dtypes["count_10m"] == "int64" and dtypes["merchant_count_distinct_1h"] == "int64"
        assert dtypes["amount_mean_7d"] == "float64" and dtypes["merchant_last3_1h"] == "list[string]"

    @pytest.mark.parametrize("make, message", [
        (lambda: Aggregation("median", "x"), "unknown aggregation function 'median'"),
        (lambda: Aggregation("sum"), "needs column="),
        (lambda: Aggregation("sum", "x", ["10 minutes"]), "must be written like"),
        (lambda: Aggregation("sum", "x", ["10m", "600s"]), "listed twice"),
        (lambda: Aggregation("last_n", "x"), "needs n="),
        (lambda: Aggregation("mean", "x", dtype="string"), "needs a numeric column"),
        (lambda: FeatureView("v", entities=[CARD], features=["a"], aggregations=[Aggregation("count")]),
         "derives its features"),
        (lambda: FeatureView("v", entities=[CARD], aggregations=[Aggregation("count", windows="1h"),
                                                                  Aggregation("count", windows=["1h"])]),
         "both produce feature 'count_1h'"),
    ])
    def test_bad_definitions_are_one_line_errors(self, make, message):
        """Mistakes in a window definition raise a ValidationError saying what to fix."""
        with pytest.raises(ValidationError, match=message):
            make()

    def test_round_trip_through_the_registry(self, store):
        """A window view applied and reloaded keeps its aggregations and lateness."""
        view = FeatureView("rt", entities=[CARD], aggregations=AGGREGATIONS, allowed_lateness=timedelta(minutes=5))
        store.apply([view])
        store.refresh(force=True)
        loaded = store.get_feature_view("rt")
        assert loaded.aggregations == view.aggregations and loaded.allowed_lateness == 300.0
        assert loaded.feature_names == view.feature_names


class TestOffline:
    def test_every_aggregation_matches_the_definition(self, workspace, store):
        """Each feature at each entity row equals a brute-force scan over the events, windows ending at the row."""
        events = random_events(1, 400, 3 * 3600)
        view = file_view(workspace, events)
        store.apply([view])
        rnd = random.Random(2)
        rows = [{"card_id": rnd.randint(1, 4), "event_timestamp": T0 + timedelta(seconds=rnd.randint(-600, 4 * 3600))}
                for _ in range(60)]
        import pandas as pd

        entity_df = pd.DataFrame(rows)
        out = store.get_historical_features(entity_df, [f"txn:{n}" for n in view.feature_names])
        assert len(out) == len(rows)  # every entity row kept, even key 4 that has no events
        assert out["card_id"].tolist() == entity_df["card_id"].tolist()
        for w in window_features(AGGREGATIONS):
            for i, row in enumerate(rows):
                want = expected(events, row["card_id"], micros(row["event_timestamp"]), w)
                got = out[w.name].iloc[i]
                assert same(None if isinstance(got, float) and got != got else got, want), (w.name, row, got, want)

    def test_later_events_never_leak(self, workspace, store):
        """An event one microsecond after the row's time is not counted; one at the same instant is."""
        at = T0 + timedelta(hours=1)
        events = [{"card_id": 1, "event_timestamp": at, "amount": 1.0, "merchant": "a"},
                  {"card_id": 1, "event_timestamp": at + timedelta(microseconds=1), "amount": 100.0, "merchant": "b"}]
        view = file_view(workspace, events, aggregations=[Aggregation("sum", "amount", ["10m"]),
                                                          Aggregation("count", windows=["10m"])])
        store.apply([view])
        import pandas as pd

        out = store.get_historical_features(pd.DataFrame({"card_id": [1, 1], "event_timestamp": [at, at]}),
                                            ["txn:amount_sum_10m", "txn:count_10m"])
        assert out["amount_sum_10m"].tolist() == [1.0, 1.0] and out["count_10m"].tolist() == [1, 1]

    def test_window_views_join_beside_batch_views(self, workspace, store):
        """A training set mixes a window view and another window view of the same entity in one call."""
        events = random_events(3, 50, 3600)
        view = file_view(workspace, events)
        other = file_view(workspace, events, name="txn2", aggregations=[Aggregation("count", windows=["1h"],
                                                                                    name="n")])
        store.apply([view, other])
        import pandas as pd

        out = store.get_historical_features(
            pd.DataFrame({"card_id": [1, 2], "event_timestamp": [T0 + timedelta(hours=1)] * 2}),
            ["txn:count_1h", "txn2:n_1h"])
        assert out["count_1h"].tolist() == out["n_1h"].tolist()

    def test_a_view_with_no_events_yet_gives_empty_windows(self, store):
        """A push view that was never pushed answers counts of 0 and nulls, keeping every row."""
        store.apply([FeatureView("empty", entities=[CARD], source=PushSource("empty"), aggregations=AGGREGATIONS)])
        import pandas as pd

        out = store.get_historical_features(pd.DataFrame({"card_id": [1], "event_timestamp": [T0]}),
                                            ["empty:count_1h", "empty:amount_sum_1h", "empty:merchant_last3_1h"])
        assert out["count_1h"].tolist() == [0] and out["amount_sum_1h"].isna().all()
        assert list(out["merchant_last3_1h"][0]) == []


class TestOnline:
    def test_pushed_events_are_served_with_every_aggregation(self, store):
        """Events pushed now are visible online at once, and equal the offline values at the same time."""
        import time

        from forgeml.features.definitions import FeatureView as FV

        store.apply([FV("live", entities=[CARD], source=PushSource("live"), aggregations=AGGREGATIONS)])
        now = time.time()
        base = T0.fromtimestamp(now - 7200, tz=T0.tzinfo)
        events = [dict(e, event_timestamp=base + (e["event_timestamp"] - T0)) for e in random_events(4, 300, 7000)]
        events.sort(key=lambda e: e["event_timestamp"])
        assert store.push("live", event_table(events)) == 300
        refs = [f"live:{w.name}" for w in window_features(AGGREGATIONS)]
        online = store.get_online_features([{"card_id": 1}, {"card_id": 2}, {"card_id": 99}], refs)
        got = online.to_dict()
        read_us = int(online.served_at * US)
        for w in window_features(AGGREGATIONS):
            for i, key in enumerate([1, 2, 99]):
                # the read happened a moment before served_at; both instants give the same windows here
                assert same(got[w.name][i], expected(events, key, read_us, w)), (w.name, key)
        assert got["count_1h"][2] == 0 and got["amount_sum_1h"][2] is None

    def test_events_too_late_are_dropped_online_and_counted(self, store):
        """An event older than its key's newest by more than the allowed lateness is reported, not applied."""
        from forgeml.features.window_online import WindowWriter

        view = FeatureView("late", entities=[CARD], aggregations=[Aggregation("count", windows=["1h"])],
                           allowed_lateness=60)
        writer = WindowWriter(view, store.online)
        on_time = [{"card_id": 1, "event_timestamp": T0 + timedelta(minutes=30), "amount": 1.0, "merchant": "a"}]
        counts = writer.apply(event_table(on_time))
        late = [{"card_id": 1, "event_timestamp": T0 + timedelta(minutes=28), "amount": 1.0, "merchant": "a"},
                {"card_id": 1, "event_timestamp": T0 + timedelta(minutes=29, seconds=30), "amount": 1.0,
                 "merchant": "a"}]
        counts = writer.apply(event_table(late))
        assert (counts.applied, counts.late) == (1, 1)

    def test_lateness_is_judged_per_key_within_one_batch(self, store):
        """In one batch, an old event of a key is late only against that key's own newer events."""
        from forgeml.features.window_online import WindowWriter

        view = FeatureView("late2", entities=[CARD], aggregations=[Aggregation("count", windows=["1h"])],
                           allowed_lateness=60)
        writer = WindowWriter(view, store.online)
        at = [(1, 30), (2, 20), (1, 10), (2, 19)]  # key 2's events are far behind key 1's, yet on time
        counts = writer.apply(event_table([{"card_id": k, "event_timestamp": T0 + timedelta(minutes=m),
                                            "amount": 1.0, "merchant": "a"} for k, m in at]))
        assert (counts.applied, counts.late) == (3, 1)

    def test_repeated_reads_follow_every_write_and_the_clock(self, store):
        """Reads reuse an entity's last decoded state and values only while its stored state and tiles are the same."""
        from forgeml.features.window_online import WindowWriter, read_window_rows

        view = FeatureView("again", entities=[CARD], aggregations=AGGREGATIONS)
        store.apply([view])
        view = store.get_feature_view("again")
        plan = store.tile_plan(view)
        names = ["count_10m", "count_1h", "merchant_last3_1h"]
        writer = WindowWriter(view, store.online)

        def read(minutes: float) -> list:
            columns, _ = read_window_rows(view, plan, store.online, [(1,)], names, micros(T0) + int(minutes * 60 * US))
            return [c[0] for c in columns]

        def event(minute: int, merchant: str) -> None:
            writer.apply(event_table([{"card_id": 1, "event_timestamp": T0 + timedelta(minutes=minute),
                                       "amount": 1.0, "merchant": merchant}]))

        event(1, "a")
        assert read(2) == read(2) == [1, 1, ["a"]]
        read(2)[2].append("changed by the caller")
        assert read(2) == [1, 1, ["a"]]
        event(2, "b")
        assert read(2) == [2, 2, ["b", "a"]]
        assert read(15) == [0, 2, ["b", "a"]]
        assert read(90) == [0, 0, []]
        WindowWriter(view, store.online).apply(event_table([{"card_id": 1, "event_timestamp": T0 + timedelta(
            minutes=89), "amount": 1.0, "merchant": "c"}]))  # another writer
        assert read(90) == [1, 1, ["c"]]

    def test_state_written_as_json_by_earlier_releases_still_reads(self, store):
        """Tiles stored in the earlier JSON form (every partial per tile) read the same values."""
        import orjson
        import pyarrow as pa

        from forgeml.features.tiles import TilePlan, read_features, state_view

        aggs = [Aggregation("count", windows=["10m"]), Aggregation("sum", "amount", ["10m"]),
                Aggregation("max", "amount", ["10m"]), Aggregation("last", "amount", ["10m"])]
        view = FeatureView("legacy", entities=[CARD], source=PushSource("legacy"), aggregations=aggs)
        store.apply([view])
        plan = TilePlan.of(view)
        hop = 60 * US
        t = micros(T0)
        legacy = [{"p0": 7}, t + 90 * US, [[hop, [[t // hop, 2, [2, 5.0], 4.0, [t, 1.0]],
                                                  [t // hop + 1, 1, [1, 3.0], 3.0, [t + 90 * US, 3.0]]]]]]
        store.online.write(state_view("legacy"), pa.table({
            "card_id": [1], "__version": pa.array([t], pa.timestamp("us", tz="UTC")),
            "state": [orjson.dumps(legacy).decode()]}), ["card_id"], "__version")
        state = store.online.read_rows(state_view("legacy"), [(1,)])[0][1]["state"]
        from forgeml.features.tiles import load_state

        loaded = load_state(plan, state)
        names = ["count_10m", "amount_sum_10m", "amount_max_10m", "amount_last_10m"]
        assert read_features(plan, loaded, names, t + 120 * US) == [3, 8.0, 4.0, 3.0]
        assert loaded["p"] == {"p0": 7}


# ---------------------------------------------------------------- the parity property
event_lists = st.lists(
    st.tuples(st.integers(1, 3), st.integers(0, 4 * 3600), st.integers(0, 120),
              st.one_of(st.none(), st.integers(-30, 30)), st.sampled_from(["a", "b", "c", None])),
    min_size=1, max_size=60)


@settings(max_examples=40, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(raw=event_lists, reads=st.lists(st.integers(0, 5 * 3600), min_size=1, max_size=6))
def test_online_equals_offline_at_every_read(workspace, raw, reads):
    """Events arrive out of order (each up to 2 minutes late); online values read at t equal offline at t.

    Reads happen at instants by which every event with an earlier event time has arrived; events are
    applied in arrival order, so tiles see them out of order.
    """
    import pandas as pd

    from forgeml.features.service import store_for
    from forgeml.features.window_online import WindowWriter, read_window_rows

    store = store_for(workspace)
    name = f"p{uuid.uuid4().hex[:8]}"
    view = FeatureView(name, entities=[CARD], source=PushSource(name), aggregations=AGGREGATIONS,
                       allowed_lateness=3600)
    store.apply([view])
    events = [{"card_id": k, "event_timestamp": T0 + timedelta(seconds=s), "amount": None if a is None else float(a),
               "merchant": m, "arrival": s + delay} for k, s, delay, a, m in raw]
    store.push(name, event_table(events), to="offline")
    arrivals = sorted(events, key=lambda e: (e["arrival"], e["event_timestamp"]))
    writer = WindowWriter(view, store.online, cache=True)
    plan = store.tile_plan(store.get_feature_view(name))
    applied = 0
    features = list(view.feature_names)
    for t_s in sorted(reads):
        while True:  # settle: move t on until everything with an earlier event time has arrived
            pending = [e["arrival"] for e in events if (e["event_timestamp"] - T0).total_seconds() <= t_s]
            if not pending or max(pending) <= t_s:
                break
            t_s = max(pending)
        batch = []
        while applied < len(arrivals) and arrivals[applied]["arrival"] <= t_s:
            batch.append(arrivals[applied])
            applied += 1
        writer.apply(event_table(batch))
        t = T0 + timedelta(seconds=t_s)
        keys = [(1,), (2,), (3,)]
        columns, _ = read_window_rows(view, plan, store.online, keys, features, micros(t))
        offline = store.get_historical_features(
            pd.DataFrame({"card_id": [1, 2, 3], "event_timestamp": [t] * 3}), [f"{name}:{f}" for f in features])
        for j, feature in enumerate(features):
            for i in range(3):
                off = offline[feature].iloc[i]
                off = None if isinstance(off, float) and off != off else off
                assert same(columns[j][i], off), (feature, i + 1, t_s, columns[j][i], off)


@pytest.mark.parametrize("seed", range(4))
def test_a_few_events_fold_as_a_large_batch_does(seed, monkeypatch):
    """Batches of a few events are folded in plain Python; replays, lateness, nulls, int and bool columns and
    every aggregation leave the same state and values as the numpy path over the same batches."""
    import numpy as np
    import pyarrow as pa

    from forgeml.features import window_online
    from forgeml.features.tiles import TilePlan, read_features

    aggs = [*AGGREGATIONS, Aggregation("sum", "qty", ["1h"], dtype="int64"),
            Aggregation("max", "qty", ["10m"], dtype="int64"), Aggregation("stddev", "qty", ["1h"], dtype="int64"),
            Aggregation("mean", "flag", ["1h"], dtype="bool"), Aggregation("min", "amount", ["1h"], name="lowest")]
    view = FeatureView("few", entities=[CARD], aggregations=aggs, allowed_lateness=300)
    plan = TilePlan.of(view)
    rnd = random.Random(seed)
    batches, offset = [], 0
    for b in range(40):
        size = rnd.randint(1, 6)
        if b and rnd.random() < 0.2:  # a replay of positions already applied
            offset = max(0, offset - size)
        rows = []
        for _ in range(size):
            offset += 1
            rows.append({"card_id": rnd.randint(1, 3), "event_timestamp": T0 + timedelta(
                seconds=b * 90 + rnd.randint(-900, 60)), "amount": None if rnd.random() < 0.1 else rnd.uniform(-5, 9),
                "merchant": rnd.choice(["a", "b", None]), "qty": None if rnd.random() < 0.1 else rnd.randint(-3, 40),
                "flag": rnd.choice([True, False, None]), "_partition": "0", "_offset": offset})
        batches.append(pa.Table.from_pylist(rows).cast(pa.schema([
            ("card_id", pa.int64()), ("event_timestamp", pa.timestamp("us", tz="UTC")), ("amount", pa.float64()),
            ("merchant", pa.string()), ("qty", pa.int64()), ("flag", pa.bool_()), ("_partition", pa.string()),
            ("_offset", pa.int64())])))

    def run(few: int) -> tuple[dict, list]:
        monkeypatch.setattr(window_online, "FEW", few)
        states: dict = {}
        counts = []
        for table in batches:
            codes, keys = window_online._entity_codes(table, ["card_id"])
            held = [states.setdefault(k, plan.empty_state()) for k in keys]
            counts.append(window_online.apply_batch(plan, held, codes, table))
        return states, counts

    python_states, python_counts = run(1000)
    numpy_states, numpy_counts = run(0)
    assert python_counts == numpy_counts and sum(c[1] for c in numpy_counts) and sum(c[2] for c in numpy_counts)
    assert python_states.keys() == numpy_states.keys()
    names = list(view.feature_names)
    for key, want in numpy_states.items():
        got = python_states[key]
        assert (got["p"], got["m"], got["t"]) == (want["p"], want["m"], want["t"])
        assert got["c"][["hop", "tile"]].tolist() == want["c"][["hop", "tile"]].tolist()
        for field in want["c"].dtype.names:
            np.testing.assert_allclose(got["c"][field], want["c"][field], rtol=1e-9, atol=1e-9)
        for t_s in range(0, 40 * 90 + 3600, 450):
            t_us = micros(T0) + t_s * US
            for name, a, b in zip(names, read_features(plan, got, names, t_us), read_features(plan, want, names, t_us)):
                assert same(a, b), (key, t_s, name, a, b)
