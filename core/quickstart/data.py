"""A realistic synthetic card-transaction stream: users, merchants, amounts, times, and late fraud labels."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CATEGORIES = ("grocery", "fuel", "travel", "online", "restaurant", "electronics")
RISKY_CATEGORIES = ("online", "electronics")
START = datetime(2026, 9, 1, tzinfo=UTC)
POPULATION_SEED = 7


@dataclass(frozen=True)
class Population:
    """Who buys where: each user's typical spend and each merchant's category, fixed across periods."""

    habit: Any  # numpy array, one typical amount per user
    merchant_category: Any  # numpy array, one category index per merchant

    @property
    def n_users(self) -> int:
        """How many users there are."""
        return len(self.habit)

    @property
    def n_merchants(self) -> int:
        """How many merchants there are."""
        return len(self.merchant_category)


def population(n_users: int = 1500, n_merchants: int = 150, seed: int = POPULATION_SEED) -> Population:
    """Return the users' habits and merchants' categories; the same seed gives the same people and shops."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return Population(rng.lognormal(3.2, 0.6, n_users), rng.integers(0, len(CATEGORIES), n_merchants))


def transactions(n_users: int = 1500, n_merchants: int = 150, days: int = 60, per_user_day: float = 0.8,
                 seed: int = 7, start: datetime = START, amount_scale: float = 1.0,
                 category_shift: bool = False, people: Population | None = None) -> Any:
    """Return transactions as an Arrow table; fraud depends on category and hour and shows in unusual amounts.

    ``people`` keeps the same users and merchants across periods (default: ``population(n_users,
    n_merchants)``); ``seed`` varies the transactions themselves. ``amount_scale`` and
    ``category_shift`` inject drift: larger amounts, and a third of purchases moving online.
    """
    import numpy as np
    import pyarrow as pa

    people = people or population(n_users, n_merchants)
    rng = np.random.default_rng(seed)
    n = int(people.n_users * days * per_user_day)
    user = rng.integers(0, people.n_users, n)
    merchant = rng.integers(0, people.n_merchants, n)
    category = people.merchant_category[merchant]
    if category_shift:
        category = np.where(rng.random(n) < 0.35, CATEGORIES.index("online"), category)
    seconds = np.sort(rng.uniform(0, days * 86400, n))
    hour = (seconds % 86400) / 3600
    risky = np.isin(category, [CATEGORIES.index(c) for c in RISKY_CATEGORIES])
    night = (hour < 5).astype(float)
    logit = -4.6 + 1.2 * risky + 1.0 * night + rng.normal(0, 0.6, n)
    fraud = rng.random(n) < 1 / (1 + np.exp(-logit))
    # a stolen card buys far above its owner's habit: the amount against the user's usual spend gives it away
    amount = people.habit[user] * rng.lognormal(0.0, 0.45, n) * np.where(fraud, rng.lognormal(1.1, 0.5, n), 1.0)
    amount = amount * amount_scale
    micros = int(start.timestamp() * 1_000_000) + (seconds * 1e6).astype("int64")
    label_delay = (rng.uniform(1, 14, n) * 86400 * 1e6).astype("int64")  # chargebacks arrive days later
    ids = np.char.add(f"t{seed}-", np.char.zfill(np.arange(n).astype(str), 7))
    return pa.table({
        "transaction_id": pa.array(ids.tolist(), pa.string()),
        "user_id": pa.array(user.astype("int64")),
        "merchant_id": pa.array(merchant.astype("int64")),
        "category": pa.DictionaryArray.from_arrays(pa.array(category.astype("int32")),
                                                   pa.array(CATEGORIES)).cast(pa.string()),
        "amount": pa.array(np.round(amount, 2)),
        "event_timestamp": pa.array(micros, pa.timestamp("us", tz="UTC")),
        "is_fraud": pa.array(fraud.astype("int64")),
        "label_timestamp": pa.array(micros + label_delay, pa.timestamp("us", tz="UTC")),
    })


def write_partitioned(table: Any, folder: Path) -> Path:
    """Write transactions as Parquet partitioned by day (hive style), as a bank export would land."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    days = pc.strftime(table["event_timestamp"], format="%Y-%m-%d")
    table = table.append_column("date", days)
    # a distinct basename per export, so a later export of the same days adds files instead of replacing them
    first = table["transaction_id"][0].as_py() if table.num_rows else "empty"
    pq.write_to_dataset(table, str(folder), partition_cols=["date"], existing_data_behavior="overwrite_or_ignore",
                        basename_template=f"{first.split('-')[0]}-{{i}}.parquet")
    return folder


def day(offset: int, start: datetime = START) -> datetime:
    """The start of day `offset` of the synthetic period."""
    return start + timedelta(days=offset)


def midnight(now: datetime | None = None) -> datetime:
    """Today's midnight (UTC): synthetic periods end here, so online values are fresh against the wall clock."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
