"""The served answer equals a plain, eager computation of the same pipeline, candidate by candidate.

The recommender merges into columns, ranks them as arrays and makes Candidates only for the rows
the rules see (and for those that fill up behind them); the reference here merges with ``merge``,
reads every feature straight from the store, scores every candidate and sorts them all.
"""

from __future__ import annotations

from typing import Any

import pytest

CONTEXT = {"hour": 12}


def reference(rec: Any, user: Any, n: int, exclude: tuple[Any, ...] = ()) -> list[tuple[Any, float, str, list[str],
                                                                                        dict[str, Any]]]:
    """Run retrieval, merge, ranking and rules for one request the eager way."""
    from forgeml.recsys import merge
    from forgeml.recsys.cache import feature_name

    q = rec.query(user, n, dict(CONTEXT), None, exclude)
    found = [(s.name, list(rec.sources[s.name].retrieve(q, s.k))[:s.k]) for s in rec.specs]
    candidates = merge(found, q.exclude, rec.settings.max_candidates)
    model = rec.model.current
    refs = list(dict.fromkeys([*model.feature_refs, *rec.settings.features, rec.settings.available]))
    rows = [{rec.settings.user_key: user, rec.settings.item_key: c.item} for c in candidates]
    got = rec.store.get_online_features(rows, refs).to_dict()
    names = [feature_name(r) for r in refs]
    for i, c in enumerate(candidates):
        c.features = {name: got[name][i] for name in names}
    candidates = [c for c in candidates if c.features[feature_name(rec.settings.available)] is not False]
    inputs = {name: [c.features[name] for c in candidates] for name in model.inputs if name in names}
    inputs.update({k: [v] * len(candidates) for k, v in CONTEXT.items()})
    for c, score in zip(candidates, model.score(inputs, len(candidates)), strict=True):
        c.score = score
    ranked = sorted(candidates, key=lambda c: -c.score)  # stable: ties keep merge order
    window = max(rec.settings.rerank_window, n) if rec.settings.rerank_window else len(ranked)
    for c in ranked[window:]:
        c.features = {}  # rules never see these, so nothing is fetched for them
    head = ranked[:window]
    for _, rule in rec.rules:
        head = list(rule.rerank(q, head))
    return [(c.item, c.score, c.source, c.sources, c.features) for c in (head + ranked[window:])[:n]]


@pytest.mark.parametrize("window", [100, 4, 0])
def test_answers_equal_the_eager_reference(recommender: Any, monkeypatch: pytest.MonkeyPatch, window: int) -> None:
    """Items, scores, sources and features match for many users, small and large n, with and without exclusions."""
    for _, rule in recommender.rules:
        if hasattr(rule, "clock"):  # the freshness boost depends on the time: the same instant for both
            monkeypatch.setattr(rule, "clock", lambda: 1.8e9)
    monkeypatch.setattr(recommender.settings, "rerank_window", window)
    checked = 0
    for user in range(0, 120, 4):
        for n, exclude in ((5, ()), (40, ()), (10, tuple(range(user, user + 60, 3)))):
            answer = recommender.recommend(user, n=n, context=dict(CONTEXT), exclude=exclude)
            assert answer.fallback is None, answer.fallback
            got = [(c.item, c.score, c.source, c.sources, c.features) for c in answer.items]
            assert got == reference(recommender, user, n, exclude), (user, n, exclude)
            checked += len(got)
    assert checked > 30 * 40


def test_rules_that_drop_candidates_are_filled_up_from_past_the_window(recommender: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """When the rules leave fewer than n, the next ranked candidates follow in ranked order, without features."""

    class DropHalf:
        def rerank(self, query: Any, candidates: list[Any]) -> list[Any]:
            return candidates[::2]

    monkeypatch.setattr(recommender, "rules", [("drop_half", DropHalf())])
    monkeypatch.setattr(recommender.settings, "rerank_window", 6)
    answer = recommender.recommend(7, n=6, context=dict(CONTEXT))
    wider = recommender.recommend(7, n=12, context=dict(CONTEXT))  # window 12: rules see the first 12
    monkeypatch.setattr(recommender, "rules", [])
    ranked = recommender.recommend(7, n=12, context=dict(CONTEXT)).items
    assert [c.item for c in answer.items] == [c.item for c in ranked[0:6:2] + ranked[6:9]]
    assert [bool(c.features) for c in answer.items] == [True] * 3 + [False] * 3
    assert [c.score for c in answer.items] == [c.score for c in ranked[0:6:2] + ranked[6:9]]
    assert [c.item for c in wider.items[:6]] == [c.item for c in ranked[0:12:2]] and len(wider.items) == 12


def test_merge_equals_the_item_by_item_definition() -> None:
    """Random answers (overlapping sources, repeats, excluded items, a limit) merge as the plain loop says."""
    import random

    from forgeml.recsys import merge

    def plain(found: list[tuple[str, list[tuple[int, float]]]], exclude: set[int], limit: int) -> list[tuple]:
        merged: dict[int, list[Any]] = {}
        for source, pairs in found:
            for item, score in pairs:
                if item not in merged:
                    if item not in exclude and len(merged) < limit:
                        merged[item] = [item, float(score), source, [source]]
                elif source not in merged[item][3]:
                    merged[item][3].append(source)
        return [tuple(m) for m in merged.values()]

    rng = random.Random(0)
    for case in range(300):
        found = [(name, [(rng.randrange(60), rng.random()) for _ in range(rng.randrange(30))])
                 for name in ("ann", "cooc", "pop", "content")[:rng.randrange(1, 5)]]
        if case % 2:  # most sources answer without repeats or excluded items, as their contract says
            found = [(name, list({i: (i, s) for i, s in pairs}.values())) for name, pairs in found]
        exclude = set(rng.sample(range(60), rng.randrange(4))) if case % 3 else set()
        if case % 2 and case % 3:
            found = [(name, [p for p in pairs if p[0] not in exclude]) for name, pairs in found]
        limit = rng.choice([5, 20, 500])
        got = [(c.item, c.score, c.source, c.sources) for c in merge(found, exclude, limit)]
        assert got == plain(found, exclude, limit), case


def test_content_scores_by_hand(recommender: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Category shares over list positions; an item in several lists (or twice in one) keeps its best score."""
    from forgeml.contracts import RecommendQuery

    content = recommender.sources["content"]
    category = {1: "a", 2: "a", 3: "b", 4: "c", 5: "c"}
    lists = {"a": (10, 11, 12), "b": (11, 13, 10, 13), "c": (20, 21)}
    monkeypatch.setattr(content.attributes, "read", lambda keys: [category.get(k) for k in keys])
    monkeypatch.setattr(content.lists, "read", lambda keys: [lists.get(k) for k in keys])
    overlapping = content.retrieve(RecommendQuery(7, [1, 2, 3]), 4)
    assert overlapping == [(10, 2 / 3), (11, 1 / 3), (12, 2 / 9), (13, 1 / 6)]
    disjoint = content.retrieve(RecommendQuery(7, [4, 5, 1], exclude={20}), 3)
    assert disjoint == [(21, (2 / 3) / 2), (10, 1 / 3), (11, (1 / 3) / 2)]
