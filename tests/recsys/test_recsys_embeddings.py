"""Embedding tables managed like models: verified before registration, swapped blue-green under load, rolled back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from serving_support import RunningServer, start_server

from forgeml.errors import ValidationError


@pytest.fixture
def server(shop_ws: Any) -> Iterator[RunningServer]:
    """The model server with the shop's recommenders, polling the registry every 0.1 s."""
    from forgeml.serving import ServerOptions, build_app

    srv = start_server(build_app([], ServerOptions(poll_interval_s=0.1, log_predictions=False), shop_ws[0]))
    srv.wait_ready()
    yield srv
    srv.stop()


def _ann(srv: RunningServer) -> Any:
    return srv.state.recommenders.recommenders["tt"].sources["ann"]


def _wait_for_version(srv: RunningServer, version: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while _ann(srv).table.version != version:
        assert time.monotonic() < deadline, f"the ANN source still searches v{_ann(srv).table.version}"
        time.sleep(0.05)


def test_the_two_tower_tables_serve_users_and_cold_starts(shop_ws: Any) -> None:
    """The registered version names its item and user tables; users get their tower's vector, strangers the mean."""
    from forgeml.recsys import Recommender, registered_table

    ws, shop = shop_ws
    table = registered_table("two_tower@production", ws)
    assert table.dim == 16 and table.user_table and len(table.cold_start) == 16
    assert ws.vector_store.count(table.table) == shop.items.num_rows
    rec = Recommender("tt", ws.config.section("serving").recommenders["tt"], ws)
    rec.load()
    try:
        known = rec.recommend(5, n=10, context={"hour": 1})
        stranger = rec.recommend(10_000_000, n=10, recent=[], context={"hour": 1})
    finally:
        rec.close()
    assert known.sources["ann"].status == "ok" and known.sources["ann"].candidates > 0
    assert stranger.sources["ann"].status == "ok" and stranger.sources["ann"].candidates > 0  # the cold-start vector
    assert known.fallback is None and len(known.items) == 10


def test_a_table_that_fails_verification_is_never_registered(shop_ws: Any) -> None:
    """NaN vectors or a vector per item missing stop the publish before the registry changes."""
    from forgeml.recsys import publish_embeddings
    from forgeml.registry import resolve

    ws, _ = shop_ws
    before = resolve("two_tower@latest", workspace=ws).version
    bad = np.ones((3, 4), dtype=np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(ValidationError, match="NaN"):
        publish_embeddings("two_tower", object(), [1, 2, 3], bad, workspace=ws)
    with pytest.raises(ValidationError, match="one vector per item"):
        publish_embeddings("two_tower", object(), [1, 2, 3], np.ones((2, 4)), workspace=ws)
    assert resolve("two_tower@latest", workspace=ws).version == before


def test_blue_green_swap_and_rollback_under_load_drop_no_request(server: RunningServer, shop_ws: Any) -> None:
    """While clients keep asking, a new embedding version is published and promoted, then rolled back: all 200s."""
    from forgeml.recsys import synthetic as syn
    from forgeml.registry import resolve, rollback

    ws, shop = shop_ws
    start_version = resolve("two_tower@production", workspace=ws).version
    _wait_for_version(server, start_version)
    stop = threading.Event()
    results: list[tuple[int, Any]] = []

    def client(seed: int) -> None:
        import httpx

        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while not stop.is_set():
                res = http.post("/v1/recommenders/tt/recommend", json={"user": int(rng.integers(0, 120)), "n": 10,
                                                                     "context": {"hour": 3}})
                body = res.json()
                results.append((res.status_code, body.get("fallback"), body.get("sources", {}).get("ann")))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        syn.train_retrieval(shop, dim=16, epochs=1, seed=7, workspace=ws)  # builds, verifies, promotes v+1
        _wait_for_version(server, start_version + 1)
        time.sleep(0.5)
        rollback("two_tower", reason="test: back to the previous tables", workspace=ws)
        _wait_for_version(server, start_version)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(results) > 20
    failed = [r for r in results if r[0] != 200 or r[1] is not None or r[2]["status"] != "ok"]
    assert failed == [], failed[:3]


def _clustered_table(ws: Any, name: str) -> tuple[np.ndarray, list[int]]:
    """Publish a small table of 4 well-separated clusters (item i in cluster i % 4); return the centres and items."""
    from sklearn.linear_model import LinearRegression

    from forgeml.recsys import publish_embeddings

    rng = np.random.default_rng(1)
    centres = np.eye(4, 8, dtype=np.float32) * 10
    items = list(range(80))
    vectors = np.stack([centres[i % 4] + rng.normal(0, 0.1, 8) for i in items]).astype(np.float32)
    publish_embeddings(name, LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), items, vectors,
                       stage="PRODUCTION", workspace=ws)
    return centres, items


def test_a_new_item_without_interactions_becomes_retrievable(shop_ws: Any) -> None:
    """add_cold_items gives a new item its like-items' mean vector: the ANN source finds it beside them."""
    from forgeml.contracts import RecommendQuery
    from forgeml.plugins.recsys.sources import AnnRetriever, AnnSettings
    from forgeml.recsys import add_cold_items, registered_table

    ws, _ = shop_ws
    _clustered_table(ws, "cold_demo")
    ann = AnnRetriever(AnnSettings(model="cold_demo@production"), ws)
    ann.refresh()
    near_two = RecommendQuery(None, recent=[2, 6], n=10)  # a stranger whose recent items sit in cluster 2
    before = [item for item, _ in ann.retrieve(near_two, 30)]
    assert 1000 not in before and all(item % 4 == 2 for item in before[:20])

    added = add_cold_items("cold_demo@production", [1000, 1001, 2], like={1000: [10, 14, 18], 1001: [999_999]},
                           workspace=ws)
    assert added == 2  # item 2 already has its trained vector and keeps it
    assert add_cold_items("cold_demo@production", [1000], workspace=ws) == 0
    assert ann.refresh()  # the table grew: the next poll reads it again
    after = [item for item, _ in ann.retrieve(near_two, 30)]
    assert 1000 in after[:21]  # among cluster 2's twenty items: its vector is their mean
    table = registered_table("cold_demo@production", ws)
    assert ann.followed is not None and ann.followed.items is not None
    stranger = ann.followed.items.get([1001])[0]  # like only unknown items: the table's cold-start vector
    assert np.allclose(stranger, table.cold_start, atol=1e-5)
    with pytest.raises(ValidationError, match="whole numbers or text"):
        add_cold_items("cold_demo@production", [1.5], workspace=ws)


def test_the_in_memory_search_agrees_with_the_vector_store(shop_ws: Any) -> None:
    """The exact in-memory search returns what the vector store's exact search returns, distances included."""
    from forgeml.recsys import registered_table
    from forgeml.recsys.embeddings import load_vectors

    ws, _ = shop_ws
    table = registered_table("two_tower@production", ws)
    loaded = load_vectors(ws, table.table, table.key)
    assert len(loaded.keys) == ws.vector_store.count(table.table)
    for user in (0, 7, 55):
        vector = table.user_vector(ws, user)
        keys, distances = loaded.nearest(vector, 20)
        found = table.search(ws, vector, 20)
        assert keys == found.column(table.key).to_pylist()
        assert np.allclose(distances, found.column("_distance").to_pylist(), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValidationError, match="dimensions"):
        loaded.nearest([1.0, 2.0], 5)
