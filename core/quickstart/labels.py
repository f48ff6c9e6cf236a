"""The quickstart's labels: chargebacks arrive through a label set, and active learning asks about the rest.

The live period's transactions become a dataset; the chargebacks that have arrived by now (label time
in the past half of the period) are recorded as ``outcome`` labels. A small triage model trained on
them scores the transactions still waiting for their outcome, margin sampling picks the least certain
for the fraud team through the local annotation backend (no server), their answers (the synthetic
truth here) come back into the label set, and the model is trained again on the larger set.
"""

from __future__ import annotations

from typing import Any

LABEL_SET = "chargebacks"
DATASET = "live_transactions"
TRIAGE_MODEL = "fraud_triage"
ROUNDS = 2
BATCH = 20
CLASSES = ["legit", "fraud"]
FEATURES = ("amount", "night", "risky_category")


def _table(live: Any) -> Any:
    """The live transactions with the columns a triage model reads (no label among them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from forgeml.quickstart.data import RISKY_CATEGORIES

    hour = pc.hour(live["event_timestamp"])
    return pa.table({
        "transaction_id": live["transaction_id"],
        "amount": pc.cast(live["amount"], pa.float64()),
        "night": pc.cast(pc.less(hour, 5), pa.float64()),
        "risky_category": pc.cast(pc.is_in(live["category"], value_set=pa.array(RISKY_CATEGORIES)), pa.float64()),
    })


def _train(ws: Any) -> tuple[Any, Any]:
    """Train the triage model on the label set's training rows; return (training version, model version)."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from forgeml.datasets import read_dataset
    from forgeml.labeling import training_set
    from forgeml.registry import register_model

    train = training_set(LABEL_SET, workspace=ws)
    rows = read_dataset(train.ref, workspace=ws).to_pandas()
    x = rows[list(FEATURES)]
    # amounts are heavy-tailed: the model reads log1p(amount) and the two flags as they are
    scale = ColumnTransformer([("amount", FunctionTransformer(np.log1p), ["amount"])], remainder="passthrough")
    model = make_pipeline(scale, LogisticRegression(max_iter=500, class_weight="balanced")).fit(x, rows["label"])
    return train, register_model(TRIAGE_MODEL, model, input_example=x[:5], datasets=[train.ref], workspace=ws)


def label_with_active_learning(qs: Any) -> str:
    """Chargebacks in as outcomes, two rounds of margin sampling answered through the local backend, retrain."""
    from forgeml.datasets import register_dataset
    from forgeml.labeling import add_labels, create_label_set
    from forgeml.labeling.active import next_batch
    from forgeml.labeling.annotate import label_here

    ws, live = qs.ws, qs.live
    register_dataset(DATASET, _table(live), description="the live period's transactions", workspace=ws)
    create_label_set(LABEL_SET, DATASET, "transaction_id", CLASSES, "Is this transaction fraud?", workspace=ws)
    ids = live["transaction_id"].to_pylist()
    truth = dict(zip(ids, live["is_fraud"].to_pylist()))
    reported = [t.timestamp() for t in live["label_timestamp"].to_pylist()]
    cutoff = sorted(reported)[len(reported) // 2]  # half the chargebacks have arrived
    arrived = [(i, CLASSES[truth[i]]) for i, at in zip(ids, reported) if at <= cutoff]
    add_labels(LABEL_SET, arrived, source_kind="outcome", source="chargebacks", workspace=ws)
    _train(ws)
    asked = 0
    for round_ in range(ROUNDS):
        batch = next_batch(LABEL_SET, strategy_name="margin", n=BATCH, seed=round_, workspace=ws)
        for key in batch.keys:  # the fraud team's answers: the synthetic truth
            label_here(LABEL_SET, key, CLASSES[truth[key]], "fraud-team", workspace=ws)
        asked += len(batch.keys)
    train, last = _train(ws)
    qs.summary.labels = (f"{len(arrived)} chargebacks arrived as outcomes; margin sampling asked the fraud team about "
                         f"{asked} of the rest in {ROUNDS} rounds (local backend); {last.uri} trained on {train.ref}")
    return qs.summary.labels
