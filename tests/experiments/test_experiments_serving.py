"""An experiment on a real served endpoint: arms with propensities, holdout, outcomes over HTTP, replay."""

from __future__ import annotations

import collections
import time

import numpy as np
import pandas as pd
import pytest

from forgeml.errors import ValidationError
from forgeml.experiments import MetricSpec, offpolicy, service
from forgeml.experiments.replay import replay
from forgeml.feedback.outcomes import read_outcomes
from forgeml.serving import EndpointConfig, ServerOptions, build_app, read_prediction_log
from forgeml.serving.arms import HOLDOUT

FEATURES = ["f0", "f1", "f2"]


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES)
    return x, ((x.f0 + 0.5 * x.f1 + rng.normal(0, 0.5, n)) > 0).astype(int)


@pytest.fixture
def models(workspace):
    """fraud v1 (production) and v2, two different logistic regressions."""
    from sklearn.linear_model import LogisticRegression

    from forgeml.registry import promote, register_model

    x, y = _frame(400, 0)
    register_model("fraud", LogisticRegression().fit(x, y), input_example=x.head(3))
    register_model("fraud", LogisticRegression(C=0.01).fit(x[["f0", "f2", "f1"]].set_axis(FEATURES, axis=1), y),
                   input_example=x.head(3))
    promote("fraud", 1, "PRODUCTION")
    return x


def _start(workspace, poll_s: float = 3600.0):
    from serving_support import start_server

    app = build_app([EndpointConfig(name="fraud", model="fraud@production")],
                    ServerOptions(poll_interval_s=poll_s, predlog_flush_s=0.1), workspace)
    running = start_server(app)
    running.wait_ready()
    return running


def test_an_experiment_routes_logs_propensities_and_reaches_a_decision(workspace, models):
    service.start_experiment("e1", "fraud", {"control": "fraud@production", "candidate": "fraud@2"},
                             holdout=0.2, holdout_constant=0.0, window="1h",
                             metric=MetricSpec("proportion", "purchase"))
    server = _start(workspace)
    x, _ = _frame(600, 1)
    replies, arm_of_key = [], {}
    try:
        for i, row in enumerate(x.to_dict("records")):
            key = f"user-{i % 300}"  # every user asks twice
            r = server.predict("fraud", {"rows": [row], "key": key})
            assert r.status_code == 200, r.text
            body = r.json()
            assert arm_of_key.setdefault(key, body["arm"]) == body["arm"]  # sticky
            replies.append(body)
        # outcomes over HTTP: candidate users convert more often
        rng = np.random.default_rng(2)
        rate = {"control": 0.1, "candidate": 0.4, HOLDOUT: 0.05}
        outcomes = [{"request_id": b["request_id"], "name": "purchase", "value": 1}
                    for b in replies if rng.random() < rate[b["arm"]]]
        answer = server.client.post("/v1/outcomes", json={"outcomes": outcomes})
        assert answer.status_code == 200 and answer.json() == {"recorded": len(outcomes)}
        bad = server.client.post("/v1/outcomes", json={"outcomes": [{"request_id": "r", "value": "lots"}]})
        assert bad.status_code == 422 and "finite" in bad.json()["error"]
        assert server.client.post("/v1/outcomes", content=b"[1,").status_code == 400
    finally:
        server.stop()
    arms = collections.Counter(b["arm"] for b in replies)
    assert set(arms) == {"control", "candidate", HOLDOUT}
    assert all(b["predictions"] == [0.0] for b in replies if b["arm"] == HOLDOUT)
    assert arms[HOLDOUT] / len(replies) == pytest.approx(0.2, abs=0.08)
    log = read_prediction_log("fraud").to_pandas()
    assert len(log) == len(replies)
    assert set(log["_experiment"]) == {"e1"}
    props = log.groupby("_arm")["_propensity"].unique()
    assert props[HOLDOUT].tolist() == [0.2]
    assert props["control"].tolist() == props["candidate"].tolist() == [pytest.approx(0.4)]
    assert sum(p[0] for p in props) == pytest.approx(1.0)
    assert len(read_outcomes(["purchase"])) == len(outcomes)
    report = service.status("e1", now=time.time() + 3601)["report"]
    by_arm = {c["treatment"]["arm"]: c for c in report["comparisons"]}
    assert by_arm["candidate"]["difference"] > 0.15 and by_arm["candidate"]["sequential_p"] < 0.05
    # the logged propensities let IPS value "always the candidate" from the mixed traffic
    reward = log["_request_id"].isin({o["request_id"] for o in outcomes}).to_numpy(dtype=float)
    target = (log["_arm"] == "candidate").to_numpy(dtype=float)
    est = offpolicy.snips(reward, log["_propensity"].to_numpy(), target)
    truth = reward[target == 1].mean()
    assert est.value == pytest.approx(truth, abs=1e-9)  # one arm, deterministic target: SNIPS is that arm's mean
    assert service.stop("e1", now=time.time() + 3601)["decision"]["winner"] == "candidate"


def test_a_stopped_experiment_hands_routing_back(workspace, models):
    service.start_experiment("e2", "fraud", {"control": "fraud@production", "candidate": "fraud@2"})
    server = _start(workspace, poll_s=0.1)
    row = {"rows": [{"f0": 0.1, "f1": 0.2, "f2": 0.3}]}

    def arms() -> set[str]:
        return {server.predict("fraud", {**row, "key": f"k{i}"}).json()["arm"] for i in range(40)}

    try:
        assert arms() == {"control", "candidate"}
        service.stop("e2", promote=False)
        deadline = time.monotonic() + 20
        while arms() != {"primary"}:  # the next registry poll reads the experiment file
            assert time.monotonic() < deadline, "routing did not return to the endpoint's primary"
            time.sleep(0.1)
        # a new experiment on a running server: its arms are loaded on the next poll, then routed to
        service.start_experiment("e3", "fraud", {"control": "fraud@production", "cand": "fraud@2"})
        while arms() != {"control", "cand"}:
            assert time.monotonic() < deadline, "the new experiment's arms were not picked up"
            time.sleep(0.1)
    finally:
        server.stop()


def test_replay_reproduces_production_exactly_and_scores_a_candidate(workspace, models):
    server = _start(workspace)
    x, y = _frame(300, 3)
    try:
        ids = [server.predict("fraud", {"rows": [row]}).json()["request_id"] for row in x.to_dict("records")]
        batch = server.predict("fraud", {"rows": x.head(20).to_dict("records")})
        assert batch.status_code == 200
    finally:
        server.stop()
    from forgeml.feedback.outcomes import log_outcomes

    log_outcomes([{"request_id": rid, "name": "label", "value": int(v)} for rid, v in zip(ids, y, strict=True)])
    same = replay("fraud@1", "fraud", outcome="label")
    assert same.rows == 320 and same.requests == 301
    assert same.exact_match == 1.0 and same.max_abs_diff == 0.0
    assert same.candidate_metric == same.production_metric and same.labelled == 300
    other = replay("fraud@2", "fraud", outcome="label")
    assert other.exact_match < 0.95 and other.mean_abs_diff > 0 and other.decision_agreement < 0.95
    assert other.labelled == 300 and other.candidate_metric < other.production_metric
    with pytest.raises(ValidationError, match="no requests"):
        replay("fraud@1", "nothing-served")
    with pytest.raises(ValidationError, match="arm"):
        replay("fraud@1", "fraud", arms=["canary"])
