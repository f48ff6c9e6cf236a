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
