"""Deterministic splits: random, by time, by group key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from forgeml.datasets import register_dataset, split
from forgeml.errors import NotFoundError, ValidationError


def _table(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    return pa.table({
        "row": np.arange(n),
        "user": rng.integers(0, 97, n),
        "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 200, n), unit="D"),
        "x": rng.normal(size=n),
    })


def test_random_split_is_deterministic_and_partitions_rows(workspace):
    register_dataset("d", _table())
    a = split("d@v1", {"train": 0.7, "validation": 0.2, "test": 0.1}, seed=42)
    b = split("d@v1", {"train": 0.7, "validation": 0.2, "test": 0.1}, seed=42)
    c = split("d@v1", {"train": 0.7, "validation": 0.2, "test": 0.1}, seed=43)
    assert all(a[k].equals(b[k]) for k in a)
    assert not a["train"].equals(c["train"])
    assert [a[k].num_rows for k in a] == [700, 200, 100]
    rows = np.concatenate([a[k]["row"].to_numpy() for k in a])
    assert sorted(rows.tolist()) == list(range(1000))


def test_group_split_never_puts_one_user_in_two_parts():
    table = _table()
    parts = split(table, (0.6, 0.2, 0.2), seed=7, by="group", column="user")
    users = [set(parts[k]["user"].to_pylist()) for k in ("train", "validation", "test")]
    assert not (users[0] & users[1]) and not (users[0] & users[2]) and not (users[1] & users[2])
    assert sum(p.num_rows for p in parts.values()) == 1000
    assert 500 <= parts["train"].num_rows <= 700, "row fractions stay close to the target"
    shuffled = table.take(pa.array(np.random.default_rng(1).permutation(1000)))
    again = split(shuffled, (0.6, 0.2, 0.2), seed=7, by="group", column="user")
    assert set(again["test"]["user"].to_pylist()) == users[2], "assignment does not depend on row order"


def test_time_split_orders_and_keeps_equal_timestamps_together():
    parts = split(_table().to_pandas(), seed=0, by="time", column="ts")
    assert isinstance(parts["train"], pd.DataFrame)
    assert parts["train"]["ts"].max() < parts["validation"]["ts"].min()
    assert parts["validation"]["ts"].max() < parts["test"]["ts"].min()
    assert sum(len(p) for p in parts.values()) == 1000


def test_bad_split_arguments():
    table = _table(50)
    with pytest.raises(ValidationError, match="sum to 1"):
        split(table, (0.5, 0.2))
    with pytest.raises(ValidationError, match="needs column"):
        split(table, by="group")
    with pytest.raises(NotFoundError, match="did you mean 'user'"):
        split(table, by="group", column="users")
    with pytest.raises(ValidationError, match="unknown split kind"):
        split(table, by="stratified")
    with pytest.raises(ValidationError, match="nulls"):
        split(pa.table({"g": [1, None, 2]}), by="group", column="g")
