"""What a recommendation request reads from memory instead of the online store, and for how long."""

from __future__ import annotations

import threading
from typing import Any

import pytest

CONTEXT = {"hour": 12}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ttl_cache_loads_misses_together_and_reloads_expired_keys() -> None:
    """Missing keys load in one call, held keys are not read again until ttl_s has passed."""
    from forgeml.recsys.cache import TTLCache

    calls: list[list[Any]] = []
    source = {1: 1, 2: 2, 3: 3}  # whole numbers: their hashes, which spread expiries, are the same every run

    def load(keys: list[Any]) -> list[Any]:
        calls.append(list(keys))
        return [source.get(k) for k in keys]

    clock = Clock()
    cache = TTLCache(10.0, load, clock=clock)
    assert cache.get_many([1, 2, 1, 99]) == [1, 2, 1, None]
    assert calls == [[1, 2, 99]]
    source[1] = 10
    clock.now += 7.4  # these keys come due in the last thousandth of ttl_s: nothing has expired yet
    assert cache.get_many([1, 2]) == [1, 2] and len(calls) == 1
    clock.now += 2.7  # past ttl_s: every key is read again
    assert cache.get_many([1, 3]) == [10, 3]
    assert sorted(calls[1]) == [1, 3]


def test_keys_read_together_come_due_spread_out() -> None:
    """A cache filled at once is read again a little at a time, and a key read again keeps nearly ttl_s."""
    from forgeml.recsys.cache import TTLCache

    clock = Clock()
    cache = TTLCache(100.0, lambda keys: [k * 2 for k in keys], clock=clock)
    keys = list(range(1024))
    cache.get_many(keys)
    due_by = []
    for _ in range(4):
        clock.now += 25.0
        before = cache.loaded
        cache.get_many(keys)
        due_by.append(cache.loaded - before)
    # first reads come due over the last three quarters of ttl_s, evenly
    assert due_by[0] == 0 and all(200 < n < 400 for n in due_by[1:3]) and sum(due_by) >= 1024
    clock.now += 1000.0
    cache.get_many(keys)
    before = cache.loaded
    clock.now += 74.9  # read again: every key keeps at least three quarters of ttl_s
    cache.get_many(keys)
    assert cache.loaded == before


def test_ttl_cache_of_zero_seconds_reads_every_time_and_a_full_cache_starts_over() -> None:
    """ttl_s = 0 is a plain read; past max_keys the held values are dropped rather than growing without end."""
    from forgeml.recsys.cache import TTLCache

    calls: list[list[Any]] = []

    def load(keys: list[Any]) -> list[Any]:
        calls.append(list(keys))
        return [k * 2 for k in keys]

    plain = TTLCache(0, load)
    assert plain.get_many([1, 2]) == [2, 4] and plain.get_many([1]) == [2] and len(calls) == 2
    small = TTLCache(60, load, max_keys=3, clock=Clock())
    small.get_many([1, 2, 3])
    small.get_many([4])
    assert len(small) == 1 and small.get_many([4]) == [8] and calls[-1] == [4]


def test_a_loader_giving_the_wrong_count_is_an_error() -> None:
    """A loader that answers fewer values than keys is refused, never zipped short."""
    from forgeml.recsys.cache import TTLCache

    with pytest.raises(ValueError, match="2 keys"):
        TTLCache(5, lambda keys: [1]).get_many(["a", "b"])


def _counting(store: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, tuple[str, ...]]]:
    calls: list[tuple[int, tuple[str, ...]]] = []
    real = store.get_online_features

    def counted(rows: Any, refs: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append((len(rows), tuple(refs)))
        return real(rows, refs, *args, **kwargs)

    monkeypatch.setattr(store, "get_online_features", counted)
    return calls


def test_candidate_features_match_the_store_and_item_views_are_read_once(shop_ws: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Columns equal a direct lookup; item views come from memory until item_cache_s; the user row is read once."""
    from forgeml.features import store_for
    from forgeml.recsys.cache import CandidateFeatures

    store = store_for(shop_ws[0])
    refs = ["users:fav_category", "users:activity", "items:category", "items:price", "items:created_at"]
    items = [3, 5, 8, 13, 3]
    direct = store.get_online_features([{"user_id": 7, "item_id": i} for i in items], refs).to_dict()
    lookup = CandidateFeatures(store, "user_id", "item_id", ttl_s=30.0)
    clock = Clock()
    lookup.item_cache(["items:category", "items:price", "items:created_at"]).clock = clock
    calls = _counting(store, monkeypatch)
    got = lookup.lookup(7, items, refs)
    assert got == {name: direct[name] for name in ("fav_category", "activity", "category", "price", "created_at")}
    assert sorted(calls) == [(1, ("users:fav_category", "users:activity")),
                             (4, ("items:category", "items:price", "items:created_at"))]
    calls.clear()
    assert lookup.lookup(9, items[::-1], refs)["category"] == direct["category"][::-1]
    assert calls == [(1, ("users:fav_category", "users:activity"))]  # items from memory
    calls.clear()
    clock.now += 31
    lookup.lookup(9, items, refs, known={"users:fav_category": 1, "users:activity": 0.5})
    assert calls == [(4, ("items:category", "items:price", "items:created_at"))]  # expired, read again
    uncached = CandidateFeatures(store, "user_id", "item_id", ttl_s=0)
    calls.clear()
    uncached.lookup(7, items, ["items:category"])
    uncached.lookup(7, items, ["items:category"])
    assert calls == [(5, ("items:category",))] * 2


def test_the_request_reads_the_users_features_in_one_lookup(recommender: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recent items, the model's user features and the purchases the rule declares come from one online read."""
    calls = _counting(recommender.store, monkeypatch)
    q = recommender.query(7)
    assert len(calls) == 1 and calls[0][0] == 1
    assert {"user_history:recent", "user_history:purchased", "users:fav_category"} <= set(q.features)
    assert q.recent == list(q.features["user_history:recent"])
    rule = dict(recommender.rules)["suppress_purchased"]
    assert rule._purchased(7, q.features) == rule._purchased(7) and rule._purchased(7)


def test_rules_see_only_the_rerank_window(recommender: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rules get the best-ranked rerank_window candidates (at least n); features are fetched for those."""
    seen: list[int] = []

    class Spy:
        def rerank(self, query: Any, candidates: list[Any]) -> list[Any]:
            seen.append(len(candidates))
            assert all(c.features for c in candidates)
            return candidates

    monkeypatch.setattr(recommender, "rules", [("spy", Spy()), *recommender.rules])
    monkeypatch.setattr(recommender.settings, "rerank_window", 30)
    assert len(recommender.recommend(7, n=10, context=CONTEXT).items) == 10
    assert recommender.recommend(7, n=40, context=CONTEXT).fallback is None
    monkeypatch.setattr(recommender.settings, "rerank_window", 0)
    full = recommender.recommend(7, n=10, context=CONTEXT)
    assert seen[:2] == [30, 40] and seen[2] > 100 and full.fallback is None


def test_sources_answering_from_memory_run_in_the_requests_thread(shop_ws: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Cached list sources and an in-memory ANN table run inline; a source without a cache runs in a thread."""
    from forgeml.recsys import Recommender
    from forgeml.recsys.settings import RecommenderSettings

    ws = shop_ws[0]
    table = ws.config.section("serving").recommenders["tt"]
    sources = [*table.sources, {"source": "cooccurrence", "feature": "item_cooc:also_bought", "k": 50,
                                "cache_s": 0}]
    settings = RecommenderSettings(**{**vars(table), "sources": sources})
    rec = Recommender("tt", settings, ws)
    try:
        rec.load()
        threads: dict[str, str] = {}
        for name, source in rec.sources.items():
            real = source.retrieve

            def spy(query: Any, k: int, real: Any = real, name: str = name) -> Any:
                threads[name] = threading.current_thread().name
                return real(query, k)

            monkeypatch.setattr(source, "retrieve", spy)
        answer = rec.recommend(7, n=10, context=CONTEXT, recent=[1, 2])
        assert answer.fallback is None and {r.status for r in answer.sources.values()} == {"ok"}
        main = threading.current_thread().name
        assert threads["ann"] == main and threads["popularity"] == main
        assert threads["cooccurrence"] != main
    finally:
        rec.close()


def test_the_sampled_selection_of_nearest_rows_is_exact() -> None:
    """smallest() gives the same k rows as a full sort, for sizes above and below its sampling threshold."""
    import numpy as np

    from forgeml.recsys.embeddings import smallest

    rng = np.random.default_rng(1)
    for n, k in ((100_000, 250), (5_000, 100), (2_000, 1_999), (50, 60), (30_000, 1)):
        values = rng.standard_normal(n).astype(np.float32)
        assert smallest(values, k).tolist() == np.argsort(values, kind="stable")[:k].tolist()
    clustered = np.concatenate([np.full(5_000, 3.0), rng.random(20_000) + 4]).astype(np.float32)
    chosen = smallest(clustered, 300)  # many ties at the boundary: any 300 of the equal values are right
    assert len(set(chosen.tolist())) == 300 and (clustered[chosen] == 3.0).all()


def test_held_values_cost_the_garbage_collector_nothing(recommender: Any) -> None:
    """List values are held as tuples and no per-key pair is kept, so one young collection untracks them all.

    A full collection walks every tracked object; thousands of held lists made each one take tens of ms.
    """
    import gc

    from forgeml.recsys.cache import TTLCache

    cache = TTLCache(60, lambda keys: [(k, k + 1, "x") for k in keys], clock=Clock())
    gc.collect()
    tracked = len(gc.get_objects())
    gc.disable()  # one collection, below, must be enough
    try:
        cache.get_many(list(range(2000)))
    finally:
        gc.enable()
    gc.collect(0)
    assert len(gc.get_objects()) - tracked < 200  # not one object per key
    assert not any(gc.is_tracked(v) for v in cache.get_many(list(range(2000))))
    cooc = recommender.sources["cooccurrence"]
    recommender.recommend(7, n=5, context=CONTEXT)
    held = [v for v in cooc.lists.read(recommender.query(7).recent) if v]
    gc.collect(0)
    assert held and all(type(v) is tuple and not gc.is_tracked(v) for v in held)
