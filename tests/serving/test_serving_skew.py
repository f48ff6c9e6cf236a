"""Window features served by entity keys, pushed over HTTP, and the training-serving skew monitor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from forgeml.serving import EndpointConfig


def fraud_score(frame: pd.DataFrame):
    return (frame["count_1h"] * 2 + frame["amount_sum_1h"] / 100).to_numpy()


@pytest.fixture
def window_model(workspace):
    """A card view of window aggregations fed by push, and a model over two of its features."""
    from forgeml.features import Aggregation, Entity, FeatureStore, FeatureView, PushSource
    from forgeml.registry import promote, register_model

    card = Entity("card", join_keys=["card_id"])
    view = FeatureView("card_txns", entities=[card], source=PushSource("card_txns"),
                       aggregations=[Aggregation("count", windows=["10m", "1h"]),
                                     Aggregation("sum", "amount", ["1h"])])
    store = FeatureStore(workspace)
    store.apply([card, view])
    now = datetime.now(UTC)
    store.push("card_txns", pd.DataFrame({
        "card_id": [1, 1, 2, 3, 3, 3], "amount": [10.0, 20.0, 5.0, 1.0, 2.0, 3.0],
        "event_timestamp": [now - timedelta(minutes=m) for m in (50, 5, 30, 40, 20, 2)]}))
    example = pd.DataFrame({"count_1h": [1, 2], "amount_sum_1h": [1.0, 2.0]})
    mv = register_model("fraud", fraud_score, flavor="python", input_example=example,
                        feature_views=["card_txns:count_1h", "card_txns:amount_sum_1h"], entity_keys=["card_id"])
    promote("fraud", mv.version, "production", reason="test")
    return store


def _requests(srv, cards):
    for card in cards:
        r = srv.predict("fraud", {"entities": [{"card_id": card}]})
        assert r.status_code == 200, r.text


def test_window_features_are_served_and_the_skew_monitor_runs_clean(window_model, serve):
    """Served window values equal the offline ones at each request time: no mismatch anywhere."""
    from forgeml.monitoring.skew import skew_report

    srv = serve([EndpointConfig("fraud", "fraud@production")])
    r = srv.predict("fraud", {"entities": [{"card_id": 1}, {"card_id": 3}]})
    assert r.json()["predictions"] == [2 * 2 + 30 / 100, 3 * 2 + 6 / 100]
    _requests(srv, [1, 2, 3, 2, 1])
    srv.stop()
    report = skew_report("fraud")
    assert report.rows == 7
    assert {f.feature: (f.rows, f.mismatches) for f in report.features} == {
        "count_1h": (7, 0), "amount_sum_1h": (7, 0)}
    assert report.share == 0.0 and report.skewed_features == []


def test_an_injected_skew_is_found_per_feature(window_model, serve, workspace):
    """Events written online only (never to the offline history) make served values differ; the report says where."""
    from forgeml.monitoring.metrics import compute
    from forgeml.monitoring.settings import AlertRule
    from forgeml.monitoring.skew import skew_report

    srv = serve([EndpointConfig("fraud", "fraud@production")])
    _requests(srv, [1, 2, 3])
    window_model.push("card_txns", pd.DataFrame({"card_id": [2, 2, 2], "amount": [100.0, 100.0, 100.0],
                                                 "event_timestamp": [datetime.now(UTC)] * 3}), to="online")
    _requests(srv, [1, 2, 3, 2])
    srv.stop()
    report = skew_report("fraud")
    by_name = {f.feature: f for f in report.features}
    assert (by_name["count_1h"].mismatches, by_name["count_1h"].rows) == (2, 7)
    assert by_name["count_1h"].max_abs_diff == 3.0 and by_name["amount_sum_1h"].max_abs_diff == 300.0
    assert set(report.skewed_features) == {"count_1h", "amount_sum_1h"}
    worst = by_name["amount_sum_1h"].examples[0]
    assert worst["card_id"] == 2 and worst["served"] == worst["offline"] + 300.0
    # alert rules can watch it
    now = datetime.now(UTC)
    rule = AlertRule(name="skew", metric="skew_share", threshold=0.0, model="fraud")
    value, details = compute("skew_share", workspace, rule, now - timedelta(hours=1), now + timedelta(seconds=1))
    assert value == pytest.approx(2 / 7) and set(details["skewed_features"]) == {"count_1h", "amount_sum_1h"}
    # and people can read it; a skewed model exits non-zero
    import json

    from click.testing import CliRunner

    from forgeml.cli import cli

    result = CliRunner().invoke(cli, ["monitor", "skew", "fraud", "--json"])
    assert result.exit_code == 1, result.output
    printed = json.loads(result.output)
    assert printed["rows"] == 7 and {f["feature"]: f["mismatches"] for f in printed["features"]} == {
        "count_1h": 2, "amount_sum_1h": 2}


def test_rows_pushed_over_http_are_served_at_once(window_model, serve):
    """POST /v1/push/{view} folds events into the window tiles; the next prediction sees them."""
    srv = serve([EndpointConfig("fraud", "fraud@production")])
    before = srv.predict("fraud", {"entities": [{"card_id": 7}]})
    assert before.status_code == 422 and "no online value" in before.json()["error"]  # no sum over no events
    stamp = datetime.now(UTC).isoformat()
    r = srv.client.post("/v1/push/card_txns", json={"rows": [{"card_id": 7, "amount": 50.0, "event_timestamp": stamp},
                                                             {"card_id": 7, "amount": 25.0, "event_timestamp": stamp}]})
    assert r.status_code == 200 and r.json() == {"view": "card_txns", "rows": 2}
    assert srv.predict("fraud", {"entities": [{"card_id": 7}]}).json()["predictions"] == [2 * 2 + 75 / 100]
    bad_time = srv.client.post("/v1/push/card_txns",
                               json={"rows": [{"card_id": 7, "amount": 1.0, "event_timestamp": "yesterday"}]})
    assert bad_time.status_code == 422 and "ISO times" in bad_time.json()["error"]
    no_amount = srv.client.post("/v1/push/card_txns", json={"rows": [{"card_id": 7, "event_timestamp": stamp}]})
    assert no_amount.status_code == 422 and "lack column 'amount'" in no_amount.json()["error"]
    unknown = srv.client.post("/v1/push/card_txn", json={"rows": [{"card_id": 7}]})
    assert unknown.status_code == 404 and "did you mean 'card_txns'" in unknown.json()["error"]
    assert srv.client.post("/v1/push/card_txns", content=b"{").status_code == 400
    mixed = srv.client.post("/v1/push/card_txns", json={"bad_rows": "dead_letter", "rows": [
        {"card_id": 7, "amount": 5.0, "event_timestamp": stamp}, {"card_id": 7, "amount": "abc", "event_timestamp": stamp},
        {"card_id": 7, "amount": 1.0, "event_timestamp": "yesterday"}]})
    assert mixed.status_code == 200 and mixed.json() == {"view": "card_txns", "rows": 1, "dead_letters": 2}
    assert srv.predict("fraud", {"entities": [{"card_id": 7}]}).json()["predictions"] == [3 * 2 + 80 / 100]


def test_skew_recomputes_on_demand_features_from_the_logged_request_values(entity_model, serve):
    """An on-demand feature is recomputed from the request values the log kept (here: amount)."""
    from forgeml.monitoring.skew import skew_report

    srv = serve([EndpointConfig("scorer", "scorer@production")])
    for user, amount in ((1, 4.0), (3, 2.0), (2, 8.0)):
        assert srv.predict("scorer", {"entities": [{"user_id": user, "amount": amount}]}).status_code == 200
    srv.stop()
    report = skew_report("scorer")
    assert {f.feature: (f.rows, f.mismatches) for f in report.features} == {
        "clicks": (3, 0), "spend": (3, 0), "spend_ratio": (3, 0)}
