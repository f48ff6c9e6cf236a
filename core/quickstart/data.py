"""A realistic synthetic card-transaction stream: users, merchants, amounts, times, and late fraud labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CATEGORIES = ("grocery", "fuel", "travel", "online", "restaurant", "electronics")
START = datetime(2026, 9, 1, tzinfo=UTC)


def transactions(n_users: int = 1500, n_merchants: int = 150, days: int = 60, per_user_day: float = 0.8,
                 seed: int = 7, start: datetime = START, amount_scale: float = 1.0,
                 category_shift: bool = False) -> Any:
    """Return transactions as an Arrow table; fraud depends on amount vs the user's habit, category and hour."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    n = int(n_users * days * per_user_day)
    user = rng.integers(0, n_users, n)
    habit = rng.lognormal(3.2, 0.6, n_users)  # each user's typical spend
    merchant = rng.integers(0, n_merchants, n)
    merchant_cat = rng.integers(0, len(CATEGORIES), n_merchants)
    category = merchant_cat[merchant]
    if category_shift:
        online = CATEGORIES.index("online")
        category = np.where(rng.random(n) < 0.35, online, category)
    seconds = np.sort(rng.uniform(0, days * 86400, n))
    hour = (seconds % 86400) / 3600
    amount = habit[user] * rng.lognormal(0.0, 0.5, n) * amount_scale
    ratio = amount / habit[user]
    risky = np.isin(category, [CATEGORIES.index("online"), CATEGORIES.index("electronics")])
    night = (hour < 5).astype(float)
    logit = -5.2 + 1.1 * np.log(ratio) * 2.0 + 1.2 * risky + 1.0 * night + rng.normal(0, 0.6, n)
    fraud = rng.random(n) < 1 / (1 + np.exp(-logit))
    ts = np.array([start.timestamp()], dtype="float64") + seconds
    label_delay = rng.uniform(1, 14, n) * 86400  # chargebacks arrive days later
    return pa.table({
        "transaction_id": pa.array([f"t{seed}-{i:07d}" for i in range(n)]),
        "user_id": pa.array(user.astype("int64")),
        "merchant_id": pa.array(merchant.astype("int64")),
        "category": pa.array([CATEGORIES[c] for c in category]),
        "amount": pa.array(np.round(amount, 2)),
        "event_timestamp": pa.array((ts * 1e6).astype("int64"), pa.timestamp("us", tz="UTC")),
        "is_fraud": pa.array(fraud.astype("int64")),
        "label_timestamp": pa.array(((ts + label_delay) * 1e6).astype("int64"), pa.timestamp("us", tz="UTC")),
    })


def write_partitioned(table: Any, folder: Path) -> Path:
    """Write transactions as Parquet partitioned by day (hive style), as a bank export would land."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    days = pc.strftime(table["event_timestamp"], format="%Y-%m-%d")
    table = table.append_column("date", days)
    pq.write_to_dataset(table, str(folder), partition_cols=["date"], existing_data_behavior="overwrite_or_ignore")
    return folder


def day(offset: int) -> datetime:
    """The start of day `offset` of the synthetic period."""
    return START + timedelta(days=offset)
