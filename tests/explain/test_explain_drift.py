"""Why did it drift: an output-drift alert names the features whose attributions moved the scores."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forgeml.monitoring import evaluate as evaluate_rules
from forgeml.monitoring.alerts import get_alert
from forgeml.registry import promote, register_model

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _window(ws, model, start, x):
    """Write prediction-log rows for x (one request each, ten seconds apart) with the model's scores."""
    n = len(x)
    table = pa.table({
        "x1": x.x1.to_numpy(), "x2": x.x2.to_numpy(),
        "_request_id": [uuid.uuid4().hex for _ in range(n)],
        "_ts": pa.array([start + timedelta(seconds=10 * i) for i in range(n)], pa.timestamp("us", tz="UTC")),
        "_model": ["m"] * n, "_version": [1] * n, "_arm": ["primary"] * n, "_latency_ms": np.full(n, 1.0),
        "_prediction": model.predict_proba(x)[:, 1], "_error": pa.array([None] * n, pa.string()),
    })
    folder = ws.dot / "predictions" / "model=m" / f"date={start.date().isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"{uuid.uuid4().hex}.parquet")


def test_a_score_shift_alert_is_attributed_to_the_feature_that_moved(configure):
    from sklearn.linear_model import LogisticRegression

    ws = configure('[[monitoring.rules]]\nname = "scores-moved"\nmetric = "score_shift"\nthreshold = 0.5\n'
                   'model = "m"\nwindow = "1h"\n')
    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(size=(2000, 2)), columns=["x1", "x2"])
    model = LogisticRegression().fit(train, (train.x1 + train.x2 > 0).astype(int))
    register_model("m", model, input_example=train.head(5), background=train, workspace=ws)
    promote("m", 1, "production", workspace=ws)
    before = pd.DataFrame(rng.normal(size=(300, 2)), columns=["x1", "x2"])
    after = pd.DataFrame({"x1": rng.normal(1.5, 1.0, 300), "x2": rng.normal(size=300)})  # x1 moved
    _window(ws, model, NOW - timedelta(minutes=110), before)
    _window(ws, model, NOW - timedelta(minutes=55), after)
    outcome = {o.rule: o for o in evaluate_rules(ws, now=NOW)}["scores-moved"]
    assert outcome.outcome == "fired"
    why = get_alert(outcome.alert.id, ws).details["why"]
    assert why["model"] == "m@1" and why["method"] == "linear"
    top, other = why["features"]
    assert top["feature"] == "x1" and top["change"] > 5 * abs(other["change"])
    # additive: the attribution changes add up to the change in the mean explained output (log-odds)
    assert sum(f["change"] for f in why["features"]) == pytest.approx(why["output_change"], abs=1e-9)

