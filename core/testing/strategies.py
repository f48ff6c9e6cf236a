"""Conformance suite for active-learning query strategies (contract: :class:`forgeml.contracts.QueryStrategy`).

Subclass :class:`QueryStrategySuite` as ``Test...`` and give it a ``strategy`` fixture. Rules:

- ``select`` returns exactly ``min(n, rows)`` distinct row indices in range, for n of 0, 1, some and
  more than the pool holds, with and without embeddings;
- the same input and seed give the same answer;
- a pool where every item is equally uncertain still gives a full batch of distinct rows;
- embeddings whose row count differs from the probabilities' raise ForgeError.
"""

from __future__ import annotations

from typing import Any

import pytest

from forgeml.contracts import QueryStrategy
from forgeml.errors import ForgeError


def pool(rows: int = 200, classes: int = 3, seed: int = 7) -> tuple[Any, Any]:
    """Class probabilities and embeddings for a synthetic pool."""
    import numpy as np

    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(rows, classes))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return p, rng.normal(size=(rows, 4))


class QueryStrategySuite:
    """Tests every query strategy must pass; subclass it and define ``strategy``."""

    @pytest.fixture
    def strategy(self) -> Any:
        """The strategy under test: override it."""
        pytest.fail("define a `strategy` fixture returning your query strategy", pytrace=False)

    def test_implements_the_contract(self, strategy: Any) -> None:
        """The strategy has a name and select()."""
        assert isinstance(strategy, QueryStrategy)
        assert isinstance(strategy.name, str) and strategy.name

    @pytest.mark.parametrize("n", [0, 1, 25, 500])
    @pytest.mark.parametrize("with_embeddings", [False, True])
    def test_a_batch_is_distinct_rows_in_range(self, strategy: Any, n: int, with_embeddings: bool) -> None:
        """min(n, rows) distinct indices, each a row of the pool."""
        p, emb = pool()
        got = [int(i) for i in strategy.select(p, n, embeddings=emb if with_embeddings else None, seed=1)]
        assert len(got) == min(n, len(p)), f"asked for {n} of {len(p)} rows, got {len(got)}"
        assert len(set(got)) == len(got), f"indices repeat: {got}"
        assert all(0 <= i < len(p) for i in got), f"indices out of range: {got}"

    def test_the_same_input_gives_the_same_batch(self, strategy: Any) -> None:
        """Same probabilities, embeddings and seed: same indices."""
        p, emb = pool()
        assert list(strategy.select(p, 20, embeddings=emb, seed=3)) == list(strategy.select(p, 20, embeddings=emb,
                                                                                          seed=3))

    def test_a_pool_of_equals_still_fills_the_batch(self, strategy: Any) -> None:
        """Identical rows everywhere: still n distinct rows."""
        import numpy as np

        p = np.full((50, 2), 0.5)
        got = [int(i) for i in strategy.select(p, 10, embeddings=np.zeros((50, 3)), seed=0)]
        assert len(set(got)) == 10

    def test_mismatched_embeddings_are_a_forge_error(self, strategy: Any) -> None:
        """Embeddings for fewer rows than the probabilities raise ForgeError."""
        p, emb = pool()
        with pytest.raises(ForgeError):
            strategy.select(p, 5, embeddings=emb[:10], seed=0)
