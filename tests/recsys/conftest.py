"""A synthetic shop in a real workspace (SQLite online store, LanceDB vectors, trained ranking and two-tower models)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# the loopback uvicorn helper of the serving tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))


@pytest.fixture(scope="session")
def shop_ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """(workspace, shop): 600 items, 120 users; views pushed, ranker and two_tower in production.

    Recommender 'shop' uses every built-in source and rule; 'tt' follows two_tower@production.
    Built once per session: the tests read it and leave it as they found it.
    """
    from forgeml.features import store_for
    from forgeml.recsys import synthetic as syn
    from forgeml.workspace import Workspace

    root = tmp_path_factory.mktemp("recsys") / "ws"
    ws = Workspace.init(root)
    shop = syn.make_shop(n_items=600, n_users=120, n_categories=12, per_user=15, dim=8, seed=3)
    store = store_for(ws)
    syn.define_views(store, 8)
    syn.push_shop(store, shop)
    syn.train_ranker(shop, workspace=ws)
    syn.train_retrieval(shop, dim=16, epochs=3, workspace=ws)
    with (root / "plugins.toml").open("a") as f:  # a loaded test machine must not time sources out
        f.write(syn.recommender_toml(budget_ms=10_000))
        f.write(syn.recommender_toml("tt", budget_ms=10_000, retrieval="two_tower"))
    return Workspace(root), shop


@pytest.fixture(autouse=True)
def shop_is_current(shop_ws: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the shop's workspace the current one for the module-level API."""
    from forgeml.workspace import set_current

    monkeypatch.setenv("FORGEML_HOME", str(shop_ws[0].root))
    set_current(shop_ws[0])
    yield
    set_current(None)


@pytest.fixture
def recommender(shop_ws: tuple[Any, Any]) -> Iterator[Any]:
    """The shop's recommender, loaded."""
    from forgeml.recsys import Recommender

    ws, _ = shop_ws
    rec = Recommender("shop", ws.config.section("serving").recommenders["shop"], ws)
    rec.load()
    yield rec
    rec.close()


@pytest.fixture
def server(shop_ws: tuple[Any, Any]) -> Iterator[Any]:
    """The model server with no model endpoints, only the shop's recommenders ('shop' and 'tt')."""
    from serving_support import start_server

    from forgeml.serving import ServerOptions, build_app

    srv = start_server(build_app([], ServerOptions(poll_interval_s=0.2, predlog_flush_s=0.2), shop_ws[0]))
    srv.wait_ready()
    yield srv
    srv.stop()
