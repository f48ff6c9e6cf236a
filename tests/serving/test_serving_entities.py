"""Predicting by entity keys: features from the real online store plus on-demand features from the request."""

from __future__ import annotations

import pandas as pd

from forgeml.serving import EndpointConfig, read_prediction_log


def test_predict_by_entity_keys_looks_features_up_online(entity_model, serve):
    srv = serve([EndpointConfig("scorer", "scorer@production")])
    r = srv.predict("scorer", {"entities": [{"user_id": 1, "amount": 4.0}, {"user_id": 3, "amount": 2.0}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == [2.0 * 10 + 5 + 0.5, 8.0 * 10 + 9 + 4.0]
    assert body["version"] == 1
    # rows and entity keys give the same answer for the same features
    by_rows = srv.predict("scorer", {"rows": [{"clicks": 5, "spend": 2.0, "spend_ratio": 0.5}]}).json()
    assert by_rows["predictions"] == body["predictions"][:1]
    srv.stop()
    frame = read_prediction_log("scorer").to_pandas()
    entity_rows = frame[frame["user_id"].notna()]
    assert entity_rows["user_id"].tolist() == [1, 3]
    assert entity_rows["spend"].tolist() == [2.0, 8.0]  # the features used are logged beside the keys
    assert entity_rows["amount"].tolist() == [4.0, 2.0]


def test_entity_requests_that_cannot_be_served_are_422(entity_model, serve):
    srv = serve([EndpointConfig("scorer", "scorer@production")])
    missing = srv.predict("scorer", {"entities": [{"user_id": 42, "amount": 1.0}]})
    assert missing.status_code == 422 and "no online value" in missing.json()["error"]
    assert missing.json()["field"] == "entities[0].clicks"
    no_key = srv.predict("scorer", {"entities": [{"amount": 1.0}]})
    assert no_key.status_code == 422 and no_key.json()["field"] == "entities[0].user_id"
    no_request_value = srv.predict("scorer", {"entities": [{"user_id": 1}]})
    assert no_request_value.status_code == 422 and "amount" in no_request_value.json()["error"]
    bad_value = srv.predict("scorer", {"entities": [{"user_id": 1, "amount": [1, 2]}]})
    assert bad_value.status_code == 422 and bad_value.json()["field"] == "entities[0].amount"
    bool_key = srv.predict("scorer", {"entities": [{"user_id": True, "amount": 1.0}]})
    assert bool_key.status_code == 422
    assert srv.predict("scorer", {"entities": [{"user_id": 2, "amount": 2.0}]}).status_code == 200


def test_a_push_is_seen_by_the_next_request(entity_model, serve):
    from forgeml.features import FeatureStore

    srv = serve([EndpointConfig("scorer", "scorer@production")])
    body = {"entities": [{"user_id": 2, "amount": 4.0}]}
    assert srv.predict("scorer", body).json()["predictions"] == [4.0 * 10 + 7 + 1.0]
    FeatureStore().push("user_stats", pd.DataFrame({"user_id": [2], "event_timestamp": [pd.Timestamp.now(tz="UTC")],
                                                    "clicks": [1], "spend": [0.0]}))
    assert srv.predict("scorer", body).json()["predictions"] == [0.0 + 1 + 0.0]
