"""Every built-in retrieval source and re-ranking rule passes its conformance suite on the synthetic shop."""

from __future__ import annotations

from typing import Any

import pytest

from forgeml.contracts import Candidate, RecommendQuery
from forgeml.testing import RerankerSuite, RetrieverSuite

SOURCES = {
    "ann": {"view": "item_emb", "user_vector": "user_emb:vector"},
    "cooccurrence": {"feature": "item_cooc:also_bought"},
    "popularity": {"feature": "popular:top_items"},
    "content": {"attribute": "items:category", "by_value": "category_top:category_items"},
}


def _build(ws: Any, layer: str, name: str, values: dict[str, Any]) -> Any:
    from forgeml.selection import configure

    provider, settings = configure(ws.plugins, layer, name, values, f"test {name}")
    return provider.build(settings, ws)


def _user_query(ws: Any, user: int) -> RecommendQuery:
    from forgeml.features import store_for

    got = store_for(ws).get_online_features([{"user_id": user}], ["user_history:recent"]).to_dict()
    return RecommendQuery(user, list(got["recent"][0]), {}, set(), 10)


class TestBuiltinSources(RetrieverSuite):
    @pytest.fixture(params=sorted(SOURCES))
    def case(self, request: pytest.FixtureRequest, shop_ws: tuple[Any, Any]) -> tuple[Any, RecommendQuery]:
        ws, _ = shop_ws
        return _build(ws, "retrievers", request.param, SOURCES[request.param]), _user_query(ws, 7)


def _candidates() -> list[Candidate]:
    now = 1_700_000_000.0
    out = []
    for i in range(12):
        features = {"category": i // 4, "sponsored": i in (5, 9), "created_at": now - (11 - i) * 86400.0}
        out.append(Candidate(i, 1.0 - i * 0.01, "ann", ["ann"], features))
    return out


RULES = {
    "diversity": {"attribute": "category", "max_per_value": 1},
    "sponsored": {"attribute": "sponsored", "slots": [1]},
    "freshness": {"attribute": "created_at", "weight": 1.0, "half_life_days": 1.0},
}


class TestBuiltinRules(RerankerSuite):
    @pytest.fixture(params=[*sorted(RULES), "suppress_purchased"])
    def case(self, request: pytest.FixtureRequest, shop_ws: tuple[Any, Any]) -> tuple[Any, RecommendQuery, list]:
        ws, _ = shop_ws
        if request.param == "suppress_purchased":
            rule = _build(ws, "rerankers", "suppress_purchased", {"feature": "user_history:purchased"})
            query = _user_query(ws, 7)
            bought = rule._purchased(7)
            candidates = [Candidate(i, 1.0 - i * 0.001, "ann", ["ann"]) for i in [*sorted(bought)[:3], 9001, 9002]]
            return rule, RecommendQuery(7, query.recent, {}, set(), 5), candidates
        rule = _build(ws, "rerankers", request.param, RULES[request.param])
        if request.param == "freshness":
            rule.clock = lambda: 1_700_000_000.0
        return rule, RecommendQuery(1, [], {}, set(), 4), _candidates()
