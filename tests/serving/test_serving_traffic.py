"""Traffic policies over real HTTP: shadow copies, sticky A/B splits, canary ramps and their rollback.

The canary ramp runs under a manual clock the test moves forward, so no test sleeps through a step.
"""

from __future__ import annotations

import time

import pytest
from serving_support import ManualClock, register_function, row

from forgeml.errors import ConfigError
from forgeml.serving import CanaryConfig, EndpointConfig, read_prediction_log
from forgeml.serving.traffic import CanaryRamp, TrafficPolicy, bucket


def double(frame):
    return frame["x"].to_numpy() * 2


def triple(frame):
    return frame["x"].to_numpy() * 3


def broken_above_100(frame):
    if (frame["x"] > 100).any():
        raise RuntimeError("the canary is broken")
    return frame["x"].to_numpy() * 3


def slow_triple(frame):
    time.sleep(0.03)
    return frame["x"].to_numpy() * 3


@pytest.fixture
def two_versions(workspace, sklearn_model):
    """clf v1 in production, clf v2 (trained on other data) as alias challenger."""
    from serving_support import training_frame
    from sklearn.linear_model import LogisticRegression

    from forgeml.registry import register_model, set_alias

    x, y = training_frame(seed=3)
    mv = register_model("clf", LogisticRegression(C=0.01).fit(x, 1 - y), input_example=x.head(5))
    set_alias("clf", "challenger", mv.version)
    return mv


def _functions(primary, challenger):
    from forgeml.registry import promote, set_alias

    v1 = register_function("fn", primary)
    promote("fn", v1.version, "production", reason="test")
    v2 = register_function("fn", challenger)
    set_alias("fn", "next", v2.version)


def test_shadow_sees_every_request_but_never_answers(two_versions, serve):
    srv = serve([EndpointConfig("clf", "clf@production", shadow="clf@challenger")])
    for i in range(6):
        body = srv.predict("clf", {"rows": [row(i / 3)]}, headers={"x-request-id": f"r{i}"}).json()
        assert body["version"] == 1 and body["arm"] == "primary"
    deadline = time.monotonic() + 10
    while srv.state.endpoints["clf"]._background and time.monotonic() < deadline:
        time.sleep(0.02)
    srv.stop()
    frame = read_prediction_log("clf").to_pandas()
    shadow = frame[frame["_arm"] == "shadow"]
    primary = frame[frame["_arm"] == "primary"]
    assert sorted(shadow["_request_id"]) == sorted(primary["_request_id"]) == [f"r{i}" for i in range(6)]
    assert set(shadow["_version"]) == {2} and set(primary["_version"]) == {1}
    # v2 was trained on the inverted label: the shadow disagrees with the primary on every row
    merged = primary.merge(shadow, on="_request_id", suffixes=("_p", "_s"))
    assert (merged["_prediction_p"] != merged["_prediction_s"]).all()


def test_ab_split_is_sticky_per_key_and_uses_both_arms(workspace, serve):
    _functions(double, triple)
    srv = serve([EndpointConfig("fn", "fn@production", ab_model="fn@next", ab_fraction=0.5)])
    arms = {}
    for k in range(40):
        first = srv.predict("fn", {"rows": [{"x": 1.0}], "key": f"user-{k}"}).json()
        again = srv.predict("fn", {"rows": [{"x": 1.0}], "key": f"user-{k}"}).json()
        assert first["arm"] == again["arm"] and first["predictions"] == again["predictions"]
        assert first["predictions"] == ([3.0] if first["arm"] == "b" else [2.0])
        assert first["arm"] == ("b" if bucket("fn", f"user-{k}") < 0.5 else "a")
        arms[k] = first["arm"]
    assert 8 <= sum(a == "b" for a in arms.values()) <= 32
    described = srv.client.get("/v1/models/fn").json()
    assert described["traffic"]["ab"] == {"b_fraction": 0.5} and described["arms"]["b"]["version"] == 2


def test_a_challenger_with_other_inputs_never_fails_the_caller(workspace, serve):
    """Arm B takes a column the primary doesn't: its requests are answered by the primary and counted."""
    from forgeml.registry import promote, set_alias

    v1 = register_function("fn", double)
    promote("fn", v1.version, "production", reason="test")
    v2 = register_function("fn", lambda frame: frame["x"].to_numpy() + frame["y"].to_numpy(), columns=("x", "y"))
    set_alias("fn", "next", v2.version)
    srv = serve([EndpointConfig("fn", "fn@production", ab_model="fn@next", ab_fraction=1.0)])
    r = srv.predict("fn", {"rows": [{"x": 2.0}], "key": "k"})
    assert r.status_code == 200, r.text
    assert r.json()["arm"] == "a" and r.json()["predictions"] == [4.0]
    # a request wrong for every arm is still the caller's error
    bad = srv.predict("fn", {"rows": [{"z": 2.0}], "key": "k"})
    assert bad.status_code == 422 and bad.json()["field"].startswith("rows[0]")
    text = srv.client.get("/metrics").text
    assert 'forgeml_serving_errors_total{kind="SchemaMismatch",model="fn",version="2"} 1.0' in text


def _canary_share(srv, keys, x=1.0):
    arms = [srv.predict("fn", {"rows": [{"x": x}], "key": k}).json()["arm"] for k in keys]
    return sum(a == "canary" for a in arms) / len(keys)


def test_canary_ramps_up_over_its_intervals(workspace, serve):
    _functions(double, triple)
    clock = ManualClock()
    config = CanaryConfig(steps=[0.1, 0.5, 1.0], interval_s=60, min_requests=1000)
    srv = serve([EndpointConfig("fn", "fn@production", canary_model="fn@next", canary=config)], clock=clock)
    keys = [f"k{i}" for i in range(80)]
    expected = [sum(bucket("fn", k) < f for k in keys) / len(keys) for f in (0.1, 0.5)]
    assert _canary_share(srv, keys) == expected[0]
    assert 0.02 < expected[0] < 0.25
    clock.advance(61)
    assert _canary_share(srv, keys) == expected[1]
    clock.advance(60)
    assert _canary_share(srv, keys) == 1.0
    canary = srv.client.get("/v1/models/fn").json()["traffic"]["canary"]
    assert canary["state"] == "promoted" and canary["fraction"] == 1.0
    assert 'forgeml_serving_canary_fraction{model="fn"} 1.0' in srv.client.get("/metrics").text


def test_canary_rolls_back_by_itself_when_its_error_rate_breaks_the_guardrail(workspace, serve):
    _functions(double, broken_above_100)
    clock = ManualClock()
    config = CanaryConfig(steps=[0.5, 1.0], interval_s=60, max_error_rate=0.2, min_requests=5)
    srv = serve([EndpointConfig("fn", "fn@production", canary_model="fn@next", canary=config)], clock=clock)
    statuses, arms = [], []
    for i in range(40):
        r = srv.predict("fn", {"rows": [{"x": 500.0}], "key": f"k{i}"})
        statuses.append(r.status_code)
        arms.append(r.json()["arm"])
        assert r.json()["predictions"] == [1000.0]  # the primary answered every request
    assert statuses == [200] * 40
    canary = srv.client.get("/v1/models/fn").json()["traffic"]["canary"]
    assert canary["state"] == "rolled_back" and canary["fraction"] == 0.0
    assert "error rate" in canary["reason"]
    clock.advance(600)  # time passing does not bring a rolled-back canary back
    assert _canary_share(srv, [f"k{i}" for i in range(40)]) == 0.0
    text = srv.client.get("/metrics").text
    assert 'forgeml_serving_canary_rollbacks_total{model="fn"} 1.0' in text
    assert 'status="error"' in text
    # a fixed canary version, pointed at by the same alias, is picked up and ramps afresh
    from forgeml.registry import set_alias

    set_alias("fn", "next", register_function("fn", triple).version)
    deadline = time.monotonic() + 20
    while srv.client.get("/v1/models/fn").json()["arms"]["canary"]["version"] != 3:
        assert time.monotonic() < deadline, "the new canary version was not picked up"
        time.sleep(0.1)
    canary = srv.client.get("/v1/models/fn").json()["traffic"]["canary"]
    assert canary["state"] == "ramping" and canary["fraction"] == 0.5 and canary["observed"] == 0
    answers = [srv.predict("fn", {"rows": [{"x": 500.0}], "key": f"k{i}"}).json() for i in range(40)]
    assert {a["predictions"][0] for a in answers if a["arm"] == "canary"} == {1500.0}
    assert sum(a["arm"] == "canary" for a in answers) > 0


def test_canary_rolls_back_when_its_p99_latency_breaks_the_guardrail(workspace, serve):
    _functions(double, slow_triple)
    config = CanaryConfig(steps=[1.0], interval_s=60, max_p99_ms=15, min_requests=8)
    srv = serve([EndpointConfig("fn", "fn@production", canary_model="fn@next", canary=config)],
                clock=ManualClock())
    answers = [srv.predict("fn", {"rows": [{"x": 1.0}], "key": f"k{i}"}).json() for i in range(30)]
    assert {a["arm"] for a in answers[:8]} == {"canary"}
    assert answers[-1]["arm"] == "primary" and answers[-1]["predictions"] == [2.0]
    canary = srv.client.get("/v1/models/fn").json()["traffic"]["canary"]
    assert canary["state"] == "rolled_back" and "p99" in canary["reason"]


def test_traffic_configuration_errors_are_clear():
    with pytest.raises(ConfigError, match="not both"):
        TrafficPolicy("e", 0.5, True, False, CanaryRamp(CanaryConfig()))
    with pytest.raises(ConfigError, match="between 0 and 1"):
        TrafficPolicy("e", 1.5, True)
    with pytest.raises(ConfigError, match="must grow"):
        CanaryRamp(CanaryConfig(steps=[0.5, 0.1]))
    with pytest.raises(ConfigError, match="fractions"):
        CanaryRamp(CanaryConfig(steps=[2.0]))


def test_bucket_is_stable_and_spread():
    values = [bucket("e", f"user-{i}") for i in range(2000)]
    assert values == [bucket("e", f"user-{i}") for i in range(2000)]
    assert 0.45 < sum(v < 0.5 for v in values) / len(values) < 0.55
    assert bucket("e", "u") != bucket("other", "u")
