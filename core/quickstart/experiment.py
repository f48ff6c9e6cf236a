"""The quickstart's experiment: production against the other version, a holdout, late labels, a decision."""

from __future__ import annotations

import time
from typing import Any

from forgeml.errors import ForgeError
from forgeml.quickstart import training

EXPERIMENT = "quickstart_ab"
WINDOW_S = 2.0


def _labelled_rows(live: Any, n: int) -> list[tuple[dict[str, Any], int]]:
    """Pick n live transactions as entity requests, each with the fraud label that only arrives later."""
    import numpy as np

    idx = np.sort(np.random.default_rng(14).choice(live.num_rows, min(n, live.num_rows), replace=False))
    picked = live.take(idx).select(["user_id", "amount", "category", "is_fraud"]).to_pylist()
    return [({"user_id": int(r["user_id"]), "amount": float(r["amount"]), "category": r["category"]},
             int(r["is_fraud"])) for r in picked]


def run_experiment(qs: Any) -> str:
    """Split live traffic between production and the other version with a 10% holdout; join late labels; decide."""
    import httpx

    from forgeml.experiments import MetricSpec, start_experiment, stop
    from forgeml.feedback import log_outcomes

    s = qs.summary
    other = s.promoted_version if s.retrained_promoted else s.retrained_version
    start_experiment(EXPERIMENT, training.MODEL, {"control": f"{training.MODEL}@production",
                                                  "candidate": f"{training.MODEL}@{other}"},
                     holdout=0.1, metric=MetricSpec("accuracy", "label"), window=f"{WINDOW_S:g}s", workspace=qs.ws)
    answers: list[tuple[str, str, int]] = []
    with httpx.Client(base_url=qs.server.url, timeout=30.0) as client:
        rows = _labelled_rows(qs.live, qs.scale.drift_requests)
        deadline = time.monotonic() + 30
        while True:  # the server reads the experiment on its next registry poll
            body = client.post(f"/v1/models/{training.MODEL}/predict", json={"entities": [rows[0][0]]}).json()
            if body.get("arm") in ("control", "candidate", "holdout"):
                break
            if time.monotonic() > deadline:
                raise ForgeError(f"the server did not pick up experiment {EXPERIMENT} within 30 s")
            time.sleep(0.3)
        for row, label in rows:
            reply = client.post(f"/v1/models/{training.MODEL}/predict", json={"entities": [row]})
            if reply.status_code != 200:
                raise ForgeError(f"experiment request failed: HTTP {reply.status_code}: {reply.text[:300]}")
            body = reply.json()
            answers.append((body["request_id"], body["arm"], label))
    # the labels arrive after the predictions, as chargebacks would
    log_outcomes([{"request_id": rid, "name": "label", "value": label} for rid, _, label in answers], workspace=qs.ws)
    time.sleep(WINDOW_S + 0.5)  # every prediction matures
    out = stop(EXPERIMENT, promote=False, workspace=qs.ws)
    decision, arms = out["decision"], out["report"]["arms"]
    per_arm = ", ".join(f"{arm} {v['matured']} requests, accuracy {v['metric']:.3f}" if v.get("metric") is not None
                        else f"{arm} {v['requests']} requests" for arm, v in sorted(arms.items()))
    s.experiment = f"{per_arm}; decision: {decision['action']} {decision['winner']} ({decision['reason']})"
    return s.experiment
