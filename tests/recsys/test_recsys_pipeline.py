"""The recommender pipeline on the synthetic shop: merge, ranking, rules, fallbacks, budgets and config errors."""

from __future__ import annotations

import time
from typing import Any

import pytest

from forgeml.errors import ConfigError

CONTEXT = {"hour": 12}


def test_merge_dedupes_in_source_order_and_drops_excluded() -> None:
    """The first source to find an item keeps it; later finders are listed; excluded items and overflow are dropped."""
    from forgeml.recsys import merge

    got = merge([("ann", [(1, 0.9), (2, 0.8), (3, 0.7)]), ("pop", [(2, 1.0), (4, 0.5), (5, 0.4)])], {3}, limit=3)
    assert [(c.item, c.score, c.source, c.sources) for c in got] == [
        (1, 0.9, "ann", ["ann"]), (2, 0.8, "ann", ["ann", "pop"]), (4, 0.5, "pop", ["pop"])]


def test_recommend_ranks_candidates_with_the_model_and_applies_the_rules(recommender: Any, shop_ws: Any) -> None:
    """Every source answers, the ranking model scores, bought and unavailable items are gone, rules hold."""
    answer = recommender.recommend(7, n=10, context=CONTEXT)
    assert answer.fallback is None and answer.model_version == 1
    assert {r.status for r in answer.sources.values()} == {"ok"}, answer.sources
    items = answer.items
    assert len(items) == 10 and len({c.item for c in items}) == 10
    bought = set(shop_ws[1].train.filter(shop_ws[1].train.column("user").to_numpy() == 7).column("item").to_pylist())
    assert not bought & {c.item for c in items}
    assert all(c.features["available"] is not False for c in items)
    assert [i for i, c in enumerate(items) if c.features["sponsored"]] in ([], [2])  # slot 3 only
    organic = [c.features["category"] for c in items if not c.features["sponsored"]]
    assert max(organic.count(v) for v in organic) <= 4  # the sponsored slot comes on top of the diversity cap
    assert set(answer.stages_ms) == {"retrieve", "rank", "rerank", "total"}
    assert all(c.source in recommender.sources for c in items)


def test_items_of_the_users_favourite_categories_rank_first(recommender: Any, shop_ws: Any) -> None:
    """The trained model puts the user's two categories on top for most users (the shop's generating rule)."""
    users = shop_ws[1].users.to_pandas().set_index("user_id")
    hits = total = 0
    for user in range(20):
        items = recommender.recommend(user, n=5, context=CONTEXT).items
        favs = {users.loc[user, "fav_category"], users.loc[user, "second_category"]}
        hits += sum(c.features["category"] in favs for c in items if not c.features["sponsored"])
        total += sum(not c.features["sponsored"] for c in items)
    assert hits / total > 0.6


def test_a_failing_source_is_reported_and_the_others_answer(recommender: Any, monkeypatch: Any) -> None:
    """A source that raises is left out of the merge with its error; no fallback is needed."""
    def broken(query: Any, k: int) -> list:
        raise RuntimeError("index corrupted")

    monkeypatch.setattr(recommender.sources["content"], "retrieve", broken)
    answer = recommender.recommend(7, n=10, context=CONTEXT)
    assert answer.sources["content"].status == "error" and "index corrupted" in answer.sources["content"].error
    assert answer.fallback is None and len(answer.items) == 10
    assert all(c.source != "content" for c in answer.items)


def test_a_slow_source_is_cut_at_the_time_budget(recommender: Any, monkeypatch: Any) -> None:
    """A source past the budget is reported as timed out and not waited for."""
    def slow(query: Any, k: int) -> list:
        time.sleep(1.0)
        return [(1, 1.0)]

    monkeypatch.setattr(recommender.sources["ann"], "retrieve", slow)
    monkeypatch.setattr(recommender.settings, "budget_ms", 100.0)
    answer = recommender.recommend(7, n=10, context=CONTEXT)
    assert answer.sources["ann"].status == "timeout"
    assert answer.stages_ms["retrieve"] < 800 and len(answer.items) == 10


def test_failing_ranking_falls_back_to_popularity(recommender: Any) -> None:
    """Without the context feature the model needs, ranking fails and the popularity source answers, saying why."""
    answer = recommender.recommend(7, n=5, context={})
    assert answer.fallback and "hour" in answer.fallback
    assert [c.source for c in answer.items] == ["popularity"] * 5
    assert answer.sources["popularity (fallback)"].status == "ok"


def test_ranking_past_its_deadline_falls_back(recommender: Any, monkeypatch: Any) -> None:
    """A ranking model slower than rank_timeout_ms is abandoned for the fallback."""
    model = recommender.model.current
    real = model.score

    def slow(columns: Any, rows: int) -> list:
        time.sleep(0.5)
        return real(columns, rows)

    monkeypatch.setattr(model, "score", slow)
    monkeypatch.setattr(recommender.settings, "rank_timeout_ms", 50.0)
    start = time.perf_counter()
    answer = recommender.recommend(7, n=5, context=CONTEXT)
    assert answer.fallback == "ranking timed out" and time.perf_counter() - start < 0.45
    assert [c.source for c in answer.items] == ["popularity"] * 5


def test_nothing_retrieved_falls_back(recommender: Any, monkeypatch: Any) -> None:
    """When every source comes back empty, the fallback source's own order answers."""
    for name, source in recommender.sources.items():
        if name != "popularity":
            monkeypatch.setattr(source, "retrieve", lambda query, k: [])
    monkeypatch.setattr(recommender.sources["popularity"], "retrieve", lambda query, k: [])
    answer = recommender.recommend(7, n=5, context=CONTEXT)
    assert answer.fallback == "no source returned candidates" and answer.items == []


def _config(shop_ws: Any, text: str) -> Any:
    from forgeml.workspace import Workspace

    root = shop_ws[0].root
    path = root / "plugins.toml"
    before = path.read_text()
    try:
        path.write_text(before + text)
        return Workspace(root).config.section("serving")
    finally:
        path.write_text(before)


@pytest.mark.parametrize(("table", "message"), [
    ('sources = [{ source = "popularty", feature = "popular:top_items" }]', "did you mean 'popularity'"),
    ('sources = [{ feature = "popular:top_items" }]', 'each source needs source = "<plugin>"'),
    ('sources = [{ source = "popularity", feature = "popular:top_items", k = 0 }]', "k must be a whole number"),
    ('sources = [{ source = "popularity", feature = "a:b" }, { source = "popularity", feature = "a:c" }]',
     "two sources are named 'popularity'"),
    ('sources = [{ source = "popularity", feature = "a:b", top = 3 }]', "top"),
    ('sources = []', "'sources' is empty"),
    ('sources = ["ann"]', "expected a table"),
    ('sources = [{ source = "popularity", feature = "a:b" }]\nfallback = "pop"', "fallback 'pop' names no source"),
    ('sources = [{ source = "popularity", feature = "a:b" }]\nrerank = [{ rule = "diversty" }]',
     "did you mean 'diversity'"),
    ('sources = [{ source = "popularity", feature = "a:b" }]\nmodel = "ranker"', "model"),
    ('sources = [{ source = "popularity", feature = "a:b" }]\navailable = "flag"', "view:feature"),
])
def test_bad_configuration_is_one_clear_line(shop_ws: Any, table: str, message: str) -> None:
    """Each mistake in a [serving.recommenders.NAME] table is a one-line ConfigError naming the table."""
    with pytest.raises(ConfigError, match=message) as err:
        _config(shop_ws, f"\n[serving.recommenders.bad]\n{table}\n")
    assert "\n" not in str(err.value) and "recommenders.bad" in str(err.value)
