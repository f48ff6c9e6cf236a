"""The quickstart's features: a user entity, 30-day spending stats, an on-demand amount ratio and a streamed
10-minute card activity count.

Importable by every process that serves or trains the model, so the on-demand transformation is
found by reference; only the transformation function imports pandas, and only when it runs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from forgeml.quickstart.data import RISKY_CATEGORIES

TRANSACTIONS = "data/transactions"  # relative to the workspace root, so the workspace can move
STATS_VIEW = "user_stats_30d"
REQUEST_VIEW = "transaction_features"
ACTIVITY_VIEW = "card_activity"
CARD_STREAM = "card_events"  # [streams.card_events] in plugins.toml: a folder of Parquet files
CARD_EVENTS = "data/card_events"  # that folder: the stream's files are also the view's offline history
ENTITY_KEYS = ["user_id"]
FEATURE_REFS = [f"{STATS_VIEW}:txn_count_30d", f"{STATS_VIEW}:mean_amount_30d",
                f"{REQUEST_VIEW}:amount_vs_mean", f"{REQUEST_VIEW}:risky_category", f"{ACTIVITY_VIEW}:card_txns_10m"]
# the model's inputs, in order: the looked-up and on-demand features plus the request's own amount
MODEL_INPUTS = ["txn_count_30d", "mean_amount_30d", "amount", "amount_vs_mean", "risky_category", "card_txns_10m"]
CARD_EVENT_COLUMNS = ["user_id", "event_timestamp", "amount"]
TARGET = "is_fraud"
WINDOW_DAYS = 30

# Each transaction's row carries its user's stats over the 30 days up to and including it; a
# point-in-time lookup just before a transaction therefore sees only the user's earlier spending.
STATS_SQL = f"""
SELECT user_id, event_timestamp,
       count(*) OVER w AS txn_count_30d,
       avg(amount) OVER w AS mean_amount_30d
FROM source
WINDOW w AS (PARTITION BY user_id ORDER BY event_timestamp
             RANGE BETWEEN INTERVAL {WINDOW_DAYS} DAYS PRECEDING AND CURRENT ROW)
"""


def transaction_features(df: Any) -> Any:
    """On-demand features of one transaction: its amount against the user's 30-day mean, and a risky category."""
    import pandas as pd

    return pd.DataFrame({
        "amount_vs_mean": df["amount"] / df["mean_amount_30d"],
        "risky_category": df["category"].isin(RISKY_CATEGORIES).astype("float64"),
    })


def definitions() -> list[Any]:
    """Return the entity, the batch view, the on-demand view and the streamed window view, for FeatureStore.apply."""
    from forgeml.features import (
        Aggregation,
        Entity,
        Feature,
        FeatureView,
        FileSource,
        OnDemandFeatureView,
        RequestSource,
        StreamSource,
    )

    user = Entity("user", join_keys=["user_id"], description="A card holder.")
    stats = FeatureView(
        STATS_VIEW, entities=[user], source=FileSource(TRANSACTIONS, name="transactions"),
        features=[Feature("txn_count_30d", "int64", "Transactions in the last 30 days."),
                  Feature("mean_amount_30d", "float64", "Mean amount over the last 30 days.")],
        transformation=STATS_SQL, ttl=timedelta(days=WINDOW_DAYS), freshness_sla=timedelta(days=2),
        owner="fraud-team", description="Each user's spending over a sliding 30-day window.")
    request = RequestSource("transaction", [("amount", "float64"), ("category", "string")])
    on_demand = OnDemandFeatureView(
        REQUEST_VIEW, sources=[stats, request],
        features=[Feature("amount_vs_mean", "float64", "Amount divided by the user's 30-day mean."),
                  Feature("risky_category", "float64", "1 for online and electronics purchases.")],
        transformation=transaction_features, owner="fraud-team",
        description="Computed per request from its amount and category and the user's stats.")
    activity = FeatureView(
        ACTIVITY_VIEW, entities=[user],
        source=StreamSource(CARD_STREAM, batch_source=FileSource(CARD_EVENTS, name="card_events")),
        aggregations=[Aggregation("count", windows=["10m"], name="card_txns")], owner="fraud-team",
        description="The card's transactions in the last 10 minutes, kept fresh from the card event stream.")
    return [user, stats, on_demand, activity]
