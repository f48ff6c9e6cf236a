"""Shared builders for feature-store tests: small deterministic sources in a fresh workspace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    """Return T0 plus some hours."""
    return T0 + timedelta(hours=hours)


@pytest.fixture
def user_source(workspace):
    """A Parquet folder (hive partitions by day) of user rows: user_id, event_timestamp, clicks, spend."""
    import pandas as pd

    folder = workspace.root / "data" / "users"
    rows = pd.DataFrame({
        "user_id": [1, 1, 1, 2, 2, 3],
        "event_timestamp": [at(0), at(10), at(30), at(5), at(50), at(1)],
        "clicks": [1, 2, 3, 10, 20, 7],
        "spend": [1.0, 2.0, 3.0, 10.0, 20.0, 7.0],
    })
    rows["day"] = rows["event_timestamp"].dt.strftime("%Y-%m-%d")
    rows.to_parquet(folder, partition_cols=["day"])
    return folder


@pytest.fixture
def defs(user_source):
    """An entity and a file-backed view with a SQL transformation and a 24 h TTL."""
    from forgeml.features import Entity, Feature, FeatureView, FileSource

    user = Entity("user", join_keys=["user_id"], description="a customer")
    stats = FeatureView(
        "user_stats", entities=[user], source=FileSource(str(user_source)), ttl=timedelta(hours=24),
        features=[Feature("clicks", "int64"), Feature("spend", "float64"), Feature("spend_per_click", "float64")],
        transformation="SELECT *, spend / clicks AS spend_per_click FROM source", owner="growth",
        freshness_sla=timedelta(hours=1), tags={"team": "growth"})
    return {"user": user, "stats": stats}
