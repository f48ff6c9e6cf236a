"""Shared data for the labeling tests: a small registered pool with a known labelling rule."""

from __future__ import annotations

from typing import Any

import pytest


def pool_table(n: int = 400, seed: int = 0) -> tuple[Any, Any]:
    """A table of n rows (id, a, b, c) and the true class of each (1 when a + b/2 > 0)."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    return pa.table({"id": np.arange(n), "a": x[:, 0], "b": x[:, 1], "c": x[:, 2]}), y


@pytest.fixture
def pool(workspace: Any) -> tuple[Any, Any, Any]:
    """(dataset version, truth per row, label set) for a 400-row pool labelled neg/pos by id."""
    from forgeml.datasets import register_dataset
    from forgeml.labeling import create_label_set

    table, y = pool_table()
    dv = register_dataset("pool", table, workspace=workspace)
    ls = create_label_set("pool-labels", "pool", "id", ["neg", "pos"], "is it positive?", workspace=workspace)
    return dv, y, ls
