"""Tracking through `forgeml server`: create, log batches (also concurrently), search, artifacts."""

from __future__ import annotations

import concurrent.futures
from typing import Any


def test_log_batches_and_search_with_the_query_language(platform: Any) -> None:
    ws, server, tokens = platform
    with server.client(tokens["scientist"]) as c:
        ids = []
        for i, lr in enumerate((0.1, 0.01, 0.001)):
            run = c.post("/runs", json={"name": f"lr{i}", "experiment": "sweep", "params": {"lr": lr}}).json()
            ids.append(run["id"])
            steps = list(range(100))
            r = c.post(f"/runs/{run['id']}/log", json={
                "metrics": {"keys": ["loss"] * 100, "values": [1.0 / (s + 1) + lr for s in steps], "steps": steps},
                "tags": {"team": "risk"}})
            assert r.json() == {"points": 100}
            assert c.post(f"/runs/{run['id']}/end", json={"status": "FINISHED"}).json()["status"] == "FINISHED"
        found = c.get("/runs", params={"query": "metrics.loss < 0.05 and tags.team = 'risk' order by params.lr",
                                       "experiment": "sweep"}).json()
        assert found["count"] == 2
        assert found["data"]["name"] == ["lr2", "lr1"]
        history = c.get(f"/runs/{ids[0]}/metrics/loss").json()
        assert history["steps"] == list(range(100)) and history["values"][0] == 1.1
        bad = c.get("/runs", params={"query": "metrics.loss <"})
        assert bad.status_code == 422 and "column" in bad.json()["error"]
    # the same answer as the library's, read from the files
    from forgeml.tracking import search_runs

    local = search_runs("metrics.loss < 0.05 and tags.team = 'risk' order by params.lr", experiments=["sweep"],
                        workspace=ws)
    assert list(local["name"]) == found["data"]["name"]


def test_artifacts_round_trip_and_hostile_paths(platform: Any) -> None:
    ws, server, tokens = platform
    with server.client(tokens["scientist"]) as c:
        run = c.post("/runs", json={"name": "art"}).json()
        payload = bytes(range(256)) * 100
        assert c.put(f"/runs/{run['id']}/artifacts/plots/a.bin", content=payload).status_code == 201
        listed = c.get(f"/runs/{run['id']}/artifacts").json()["artifacts"]
        assert [a["path"] for a in listed] == ["plots/a.bin"]
        assert c.get(f"/runs/{run['id']}/artifacts/plots/a.bin").content == payload
        assert c.put(f"/runs/{run['id']}/artifacts/..%2F..%2Fetc%2Fpasswd", content=b"x").status_code == 422
        assert c.get(f"/runs/{run['id']}/artifacts/nope").status_code == 404
    with server.client(tokens["viewer"]) as c:
        assert c.put(f"/runs/{run['id']}/artifacts/x", content=b"x").status_code == 403
        assert c.get(f"/runs/{run['id']}/artifacts/plots/a.bin").content == payload


def test_malformed_bodies_get_one_line_errors(platform: Any) -> None:
    ws, server, tokens = platform
    with server.client(tokens["scientist"]) as c:
        run = c.post("/runs", json={"name": "bad"}).json()
        cases = [b"{not json", b"[1, 2]", b'{"metrics": {"keys": ["a"], "values": [1, 2]}}',
                 b'{"metrics": {"keys": [""], "values": [1]}}', b'{"metrics": {"keys": ["a"], "values": ["x"]}}',
                 b'{"params": {"a": {"nested": 1}}}']
        for body in cases:
            r = c.post(f"/runs/{run['id']}/log", content=body)
            assert r.status_code == 422, (body, r.text)
            assert "\n" not in r.json()["error"]
        assert c.post("/runs/ffffffffffff/log", json={}).status_code == 404


def test_concurrent_clients_lose_no_points(platform: Any) -> None:
    ws, server, tokens = platform
    with server.client(tokens["scientist"]) as c:
        run = c.post("/runs", json={"name": "many"}).json()

    def send(worker: int) -> int:
        with server.client(tokens["scientist"]) as c:
            total = 0
            for batch in range(5):
                steps = [worker * 10_000 + batch * 200 + i for i in range(200)]
                total += c.post(f"/runs/{run['id']}/log", json={
                    "metrics": {"keys": ["m"] * 200, "values": [float(s) for s in steps], "steps": steps}}).json()["points"]
            return total

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(send, range(8))) == 8 * 5 * 200
    from forgeml.tracking.store import tracking_store

    assert tracking_store(ws).count_points(run["id"], "m") == 8 * 5 * 200
