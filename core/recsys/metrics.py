"""Offline metrics of recommendation lists: recall@k, NDCG@k, MRR, MAP@k, catalogue coverage and diversity.

Relevance is binary (an item the user went on to interact with is relevant). Per-user values are
averaged over users with at least one relevant item; a user without any says nothing about ranking.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from forgeml.errors import ValidationError


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValidationError(f"k must be a whole number of at least 1, got {k!r}")


def recall_at_k(recommended: Sequence[Any], relevant: Iterable[Any], k: int) -> float:
    """Share of the relevant items found in the top k."""
    _check_k(k)
    rel = set(relevant)
    return len(rel.intersection(recommended[:k])) / len(rel) if rel else 0.0


def ndcg_at_k(recommended: Sequence[Any], relevant: Iterable[Any], k: int) -> float:
    """Discounted cumulative gain of the top k over the best possible (binary gains, log2 discount)."""
    _check_k(k)
    rel = set(relevant)
    dcg = sum(1.0 / math.log2(i + 2) for i, item in enumerate(recommended[:k]) if item in rel)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), k)))
    return dcg / ideal if ideal else 0.0


def reciprocal_rank(recommended: Sequence[Any], relevant: Iterable[Any]) -> float:
    """1 / the position of the first relevant item (0 when none is recommended)."""
    rel = set(relevant)
    return next((1.0 / (i + 1) for i, item in enumerate(recommended) if item in rel), 0.0)


def average_precision_at_k(recommended: Sequence[Any], relevant: Iterable[Any], k: int) -> float:
    """Mean of precision@i over the positions i <= k holding a relevant item, over min(|relevant|, k)."""
    _check_k(k)
    rel = set(relevant)
    hits, total = 0, 0.0
    for i, item in enumerate(recommended[:k]):
        if item in rel:
            hits += 1
            total += hits / (i + 1)
    return total / min(len(rel), k) if rel else 0.0


def catalogue_coverage(lists: Iterable[Sequence[Any]], catalogue_size: int, k: int) -> float:
    """Share of the catalogue that appears in at least one top-k list."""
    _check_k(k)
    if catalogue_size < 1:
        raise ValidationError(f"catalogue_size must be at least 1, got {catalogue_size}")
    seen = {item for items in lists for item in items[:k]}
    return len(seen) / catalogue_size


def intra_list_diversity(items: Sequence[Any], category: Callable[[Any], Any] | Mapping[Any, Any], k: int) -> float:
    """Share of pairs in the top k whose categories differ (0: one category, 1: all different)."""
    _check_k(k)
    lookup = category.get if isinstance(category, Mapping) else category
    cats = [lookup(i) for i in items[:k]]
    pairs = len(cats) * (len(cats) - 1) / 2
    if not pairs:
        return 0.0
    differ = sum(1 for a in range(len(cats)) for b in range(a + 1, len(cats)) if cats[a] != cats[b])
    return differ / pairs


def evaluate(recommendations: Mapping[Any, Sequence[Any]], relevant: Mapping[Any, Iterable[Any]], k: int = 10,
             catalogue_size: int | None = None, category: Callable[[Any], Any] | Mapping[Any, Any] | None = None,
             ) -> dict[str, float]:
    """Return every offline metric at k, averaged over users with relevant items (named e.g. ``ndcg@10``)."""
    _check_k(k)
    users = [u for u, rel in relevant.items() if set(rel)]
    if not users:
        raise ValidationError("evaluate: no user has a relevant item; nothing to measure")
    sums = {f"recall@{k}": 0.0, f"ndcg@{k}": 0.0, "mrr": 0.0, f"map@{k}": 0.0}
    for u in users:
        recs = list(recommendations.get(u, []))
        rel = set(relevant[u])
        sums[f"recall@{k}"] += recall_at_k(recs, rel, k)
        sums[f"ndcg@{k}"] += ndcg_at_k(recs, rel, k)
        sums["mrr"] += reciprocal_rank(recs[:k], rel)
        sums[f"map@{k}"] += average_precision_at_k(recs, rel, k)
    out = {name: total / len(users) for name, total in sums.items()}
    out["users"] = float(len(users))
    if catalogue_size is not None:
        out[f"coverage@{k}"] = catalogue_coverage(recommendations.values(), catalogue_size, k)
    if category is not None:
        lists = [list(v) for v in recommendations.values() if len(v) > 1]
        out[f"diversity@{k}"] = sum(intra_list_diversity(v, category, k) for v in lists) / len(lists) if lists else 0.0
    return out
