"""Explanations over HTTP: "explain": true returns each row's top reasons; attributions reach the log."""

from __future__ import annotations

import numpy as np
from serving_support import FEATURES, row, training_frame

from forgeml.serving import EndpointConfig, ServerOptions, read_prediction_log


def _tree_model():
    from sklearn.ensemble import GradientBoostingClassifier

    from forgeml.registry import promote, register_model

    x, y = training_frame()
    model = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(x, y)
    mv = register_model("gbm", model, input_example=x.head(5))
    promote("gbm", mv.version, "production")
    return model, x


def test_explain_true_returns_top_reasons_that_add_up_to_the_model_output(workspace, serve):
    model, x = _tree_model()
    srv = serve([EndpointConfig("gbm", "gbm@production")])
    rows = x.head(3).to_dict(orient="records")
    plain = srv.predict("gbm", {"rows": rows})
    assert plain.status_code == 200 and "explanations" not in plain.json()
    resp = srv.predict("gbm", {"rows": rows, "explain": True, "top_k": 2})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert len(body["explanations"]) == 3
    for i, explanation in enumerate(body["explanations"]):
        assert explanation["method"] == "tree" and len(explanation["reasons"]) == 2
        # the label depends on f0 and f1 only: they are the top reasons
        assert {r["feature"] for r in explanation["reasons"]} == {"f0", "f1"}
        assert explanation["reasons"][0]["value"] == rows[i][explanation["reasons"][0]["feature"]]
    # all five attributions plus the base value give the model's log-odds
    full = srv.predict("gbm", {"rows": rows, "explain": True, "top_k": 5}).json()["explanations"]
    totals = [e["base_value"] + sum(r["contribution"] for r in e["reasons"]) for e in full]
    np.testing.assert_allclose(totals, model.decision_function(x.head(3)), atol=1e-6)


def test_bad_explain_fields_are_422_naming_the_field(workspace, serve, sklearn_model):
    srv = serve([EndpointConfig("clf", "clf@production")])
    for body, field in (({"rows": [row()], "explain": "yes"}, "explain"),
                        ({"rows": [row()], "explain": True, "top_k": 0}, "top_k"),
                        ({"rows": [row()], "explain": True, "top_k": True}, "top_k")):
        resp = srv.predict("clf", body)
        assert resp.status_code == 422 and resp.json()["field"] == field, resp.text


def test_explained_requests_log_each_feature_attribution(workspace, serve, sklearn_model):
    srv = serve([EndpointConfig("clf", "clf@production")])
    assert srv.predict("clf", {"rows": [row(0.1), row(0.9)], "explain": True}).status_code == 200
    assert srv.predict("clf", {"rows": [row(0.2)]}).status_code == 200
    srv.state.predlog.flush()
    frame = read_prediction_log("clf").to_pandas().sort_values("_ts")
    assert {f"_attr_{f}" for f in FEATURES} <= set(frame.columns)
    assert frame["_attr_f0"].notna().tolist() == [True, True, False]  # only the explained request


def test_log_explanations_attributes_every_request_without_changing_replies(workspace, serve, sklearn_model):
    options = ServerOptions(poll_interval_s=0.2, predlog_flush_s=0.2, log_explanations=True)
    srv = serve([EndpointConfig("clf", "clf@production")], options)
    resp = srv.predict("clf", {"rows": [row(0.3)]})
    assert resp.status_code == 200 and "explanations" not in resp.json()
    srv.state.predlog.flush()
    frame = read_prediction_log("clf").to_pandas()
    assert frame["_attr_f0"].notna().all() and frame["_attr_f0"].abs().sum() > 0


def test_a_stored_calibrator_and_threshold_decide_the_served_class(workspace, serve):
    from sklearn.naive_bayes import GaussianNB

    from forgeml.evaluation.calibration import fit_calibration
    from forgeml.registry import load_model, promote, register_model

    x, y = training_frame(2000)
    mv = register_model("nb", GaussianNB().fit(x[:1000], y[:1000]), input_example=x.head(5))
    promote("nb", mv.version, "production")
    fit_calibration("nb@1", x[1000:].assign(label=y[1000:].to_numpy()), "label", method="platt", threshold=0.9)
    srv = serve([EndpointConfig("nb", "nb@production")])
    rows = x.head(40)
    served = srv.predict("nb", {"rows": rows.to_dict(orient="records")}).json()["predictions"]
    calibrated = load_model("nb@1").predict_proba(rows)[:, 1]
    assert served == (calibrated >= 0.9).astype(int).tolist()
    assert 0 < sum(served) < sum(GaussianNB().fit(x[:1000], y[:1000]).predict(rows))  # stricter than 0.5
