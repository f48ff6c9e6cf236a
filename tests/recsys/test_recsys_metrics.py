"""Offline recommendation metrics against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from forgeml.errors import ValidationError
from forgeml.recsys import (
    average_precision_at_k,
    catalogue_coverage,
    evaluate,
    intra_list_diversity,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
)

RECS = ["a", "b", "c", "d", "e"]
RELEVANT = {"b", "d", "x"}


def test_recall_counts_relevant_items_in_the_top_k() -> None:
    """b and d of {b, d, x} are in the top 5; only b in the top 2."""
    assert recall_at_k(RECS, RELEVANT, 5) == pytest.approx(2 / 3)
    assert recall_at_k(RECS, RELEVANT, 2) == pytest.approx(1 / 3)


def test_ndcg_discounts_by_log2_of_the_position() -> None:
    """Hits at positions 2 and 4: (1/log2 3 + 1/log2 5) / (1 + 1/log2 3 + 1/2)."""
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(RECS, RELEVANT, 5) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(["b", "d", "x"], RELEVANT, 3) == pytest.approx(1.0)
    assert ndcg_at_k(["q"], RELEVANT, 3) == 0.0


def test_mrr_and_map() -> None:
    """First hit at 2 gives 1/2; AP@5 = (1/2 + 2/4) / min(3, 5)."""
    assert reciprocal_rank(RECS, RELEVANT) == 0.5
    assert reciprocal_rank(["q"], RELEVANT) == 0.0
    assert average_precision_at_k(RECS, RELEVANT, 5) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert average_precision_at_k(RECS, {"a"}, 5) == 1.0


def test_coverage_and_diversity() -> None:
    """Two lists covering 4 of 10 items; categories x, x, y give 2 differing pairs of 3."""
    assert catalogue_coverage([["a", "b"], ["b", "c", "d"]], 10, 5) == pytest.approx(0.4)
    assert catalogue_coverage([["a", "b"], ["b", "c", "d"]], 10, 1) == pytest.approx(0.2)
    assert intra_list_diversity(["a", "b", "c"], {"a": "x", "b": "x", "c": "y"}, 3) == pytest.approx(2 / 3)
    assert intra_list_diversity(["a"], {"a": "x"}, 3) == 0.0


def test_evaluate_averages_over_users_with_relevant_items() -> None:
    """Users with nothing relevant are left out of the average; every metric is named with its k."""
    got = evaluate({"u1": RECS, "u2": ["x", "a"], "u3": ["a"]}, {"u1": RELEVANT, "u2": {"x"}, "u3": set()}, k=5,
                   catalogue_size=10, category=lambda item: item in "ab")
    assert got["users"] == 2
    assert got["recall@5"] == pytest.approx((2 / 3 + 1) / 2)
    assert got["mrr"] == pytest.approx((0.5 + 1) / 2)
    assert got["coverage@5"] == pytest.approx(0.6)
    assert set(got) == {"recall@5", "ndcg@5", "mrr", "map@5", "users", "coverage@5", "diversity@5"}


def test_bad_input_is_a_validation_error() -> None:
    """k below 1, or nobody with a relevant item, is refused in one line."""
    with pytest.raises(ValidationError, match="k must be"):
        ndcg_at_k(RECS, RELEVANT, 0)
    with pytest.raises(ValidationError, match="no user has a relevant item"):
        evaluate({"u": RECS}, {"u": []})
