"""POST /v1/recommenders/{name}/recommend on a real server over the synthetic shop, end to end."""

from __future__ import annotations

from typing import Any

from serving_support import RunningServer


def _recommend(srv: RunningServer, body: Any, name: str = "shop") -> Any:
    return srv.client.post(f"/v1/recommenders/{name}/recommend", json=body)


def test_the_endpoint_answers_top_n_with_scores_sources_and_stage_timings(server: RunningServer) -> None:
    """A request gives n ranked items, each with its score and source; timings, metrics and impressions are kept."""
    from forgeml.serving import read_prediction_log

    res = _recommend(server, {"user": 7, "n": 8, "context": {"hour": 20}})
    assert res.status_code == 200, res.text
    body = res.json()
    assert len(body["items"]) == 8 and body["fallback"] is None and body["model_version"] == 1
    assert all(set(i) == {"item", "score", "source", "sources"} for i in body["items"])
    assert {i["source"] for i in body["items"]} <= {"ann", "cooccurrence", "popularity", "content"}
    assert set(body["stages_ms"]) == {"retrieve", "rank", "rerank", "total"} and body["request_id"]
    metrics = server.client.get("/metrics").text
    assert 'forgeml_recsys_stage_latency_seconds_count{recommender="shop",stage="rank"}' in metrics
    assert 'forgeml_recsys_requests_total{recommender="shop",status="ok"}' in metrics
    server.state.predlog.flush()
    log = read_prediction_log("recommender.shop").to_pandas()
    mine = log[log["_request_id"] == body["request_id"]]
    assert list(mine["item"]) == [str(i["item"]) for i in body["items"]]
    assert list(mine["position"]) == list(range(1, 9)) and set(mine["user"]) == {"7"}


def test_a_failing_ranking_stage_is_answered_by_the_fallback(server: RunningServer) -> None:
    """Without the context the model needs, popularity answers and the reply and metrics say so."""
    body = _recommend(server, {"user": 7, "n": 4}).json()
    assert body["fallback"].startswith("ranking failed") and [i["source"] for i in body["items"]] == ["popularity"] * 4
    assert 'forgeml_recsys_fallbacks_total{recommender="shop"} 1.0' in server.client.get("/metrics").text


def test_bad_requests_get_clear_errors(server: RunningServer) -> None:
    """Unknown recommender 404 with a suggestion; malformed JSON 400; wrong fields 422."""
    res = _recommend(server, {"user": 1}, name="shp")
    assert res.status_code == 404 and "did you mean 'shop'" in res.json()["error"]
    res = server.client.post("/v1/recommenders/shop/recommend", content=b"{nope")
    assert res.status_code == 400 and "not valid JSON" in res.json()["error"]
    for body, needle in (([1], "JSON object"), ({"user": 1, "count": 3}, "unknown field 'count'"),
                         ({"user": 1, "n": 0}, "n must be"), ({"user": 1, "context": [1]}, "context must be"),
                         ({"user": 1, "exclude": 5}, "exclude must be a list")):
        res = _recommend(server, body)
        assert res.status_code == 422 and needle in res.json()["error"], (body, res.text)


def test_recommendations_beat_popularity_offline(recommender: Any, shop_ws: Any) -> None:
    """On held-out interactions the full pipeline's NDCG@10 is above the popularity list's."""
    from forgeml.recsys import evaluate

    shop = shop_ws[1]
    held = shop.test.to_pandas().groupby("user")["item"].apply(set).to_dict()
    users = sorted(held)[:40]
    ranked = {u: [c.item for c in recommender.recommend(u, n=10, context={"hour": 12}).items] for u in users}
    popular = {u: [c.item for c in recommender.recommend(u, n=10, context={}).items] for u in users}  # fallback
    category = dict(zip(shop.items.column("item_id").to_pylist(), shop.items.column("category").to_pylist(),
                        strict=True))
    got = evaluate(ranked, {u: held[u] for u in users}, k=10, catalogue_size=shop.items.num_rows, category=category)
    base = evaluate(popular, {u: held[u] for u in users}, k=10, catalogue_size=shop.items.num_rows, category=category)
    assert got["ndcg@10"] > base["ndcg@10"] and got["recall@10"] > base["recall@10"], (got, base)
    assert got["coverage@10"] > base["coverage@10"]
