"""A synthetic shop in a real workspace (SQLite online store, LanceDB vectors, a trained ranking model), shared per module."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# the loopback uvicorn helper of the serving tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))


@pytest.fixture(scope="module")
def shop_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """(workspace, shop): 600 items, 120 users, views pushed, ranker@production trained, recommender 'shop' configured."""
    from forgeml.features import store_for
    from forgeml.recsys import synthetic as syn
    from forgeml.workspace import Workspace, set_current

    root = tmp_path_factory.mktemp("recsys") / "ws"
    with pytest.MonkeyPatch.context() as mp:
        ws = Workspace.init(root)
        mp.setenv("FORGEML_HOME", str(root))
        set_current(ws)
        shop = syn.make_shop(n_items=600, n_users=120, n_categories=12, per_user=15, dim=8, seed=3)
        store = store_for(ws)
        syn.define_views(store, 8)
        syn.push_shop(store, shop)
        syn.train_ranker(shop, workspace=ws)
        with (root / "plugins.toml").open("a") as f:
            f.write(syn.recommender_toml(budget_ms=10_000))  # a loaded test machine must not time sources out
        ws = Workspace(root)
        set_current(ws)
        yield ws, shop
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
