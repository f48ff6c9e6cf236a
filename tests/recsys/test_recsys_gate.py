"""A gate on NDCG: a ranking model registered with its offline metrics is promoted only above the floor."""

from __future__ import annotations

from typing import Any

import pytest

from forgeml.errors import GateFailedError


def test_promotion_is_gated_on_offline_ndcg(recommender: Any, shop_ws: Any) -> None:
    """The measured NDCG@10 passes a floor below it and blocks one above it; production stays as it was."""
    from forgeml.recsys import evaluate
    from forgeml.recsys import synthetic as syn
    from forgeml.registry import promote, register_model, resolve
    from forgeml.workspace import Workspace

    ws, shop = shop_ws
    held = shop.test.to_pandas().groupby("user")["item"].apply(set).to_dict()
    users = sorted(held)[:30]
    lists = {u: [c.item for c in recommender.recommend(u, n=10, context={"hour": 12}).items] for u in users}
    ndcg = evaluate(lists, {u: held[u] for u in users}, k=10)["ndcg@10"]
    current = resolve("ranker@production", workspace=ws).version
    path = ws.root / "plugins.toml"
    before = path.read_text()
    try:
        for floor, passes in ((ndcg / 2, True), (min(1.0, ndcg * 2 + 0.01), False)):
            path.write_text(before + f'\n[registry.models.ranker_gated]\ngates = [{{ gate = "metric_threshold", '
                                     f'metric = "ndcg@10", min = {floor} }}]\n')
            gated = Workspace(ws.root)
            x, y = syn.training_rows(shop)
            model = recommender.model.current.model.model  # the fitted pipeline, registered again with its metrics
            mv = register_model("ranker_gated", model, flavor="sklearn", input_example=x.head(3),
                                metrics={"ndcg@10": ndcg}, workspace=gated)
            if passes:
                assert promote("ranker_gated", mv.version, "production", workspace=gated).model_version.stage == \
                    "PRODUCTION"
            else:
                with pytest.raises(GateFailedError, match="ndcg@10"):
                    promote("ranker_gated", mv.version, "production", workspace=gated)
                assert resolve("ranker_gated@production", workspace=gated).version == mv.version - 1
    finally:
        path.write_text(before)
    assert resolve("ranker@production", workspace=ws).version == current
