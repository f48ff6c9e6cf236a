"""Hot swap under load: a promotion and a rollback in the registry reach the server with no failed request."""

from __future__ import annotations

import threading
import time

import httpx
from serving_support import row

from forgeml.serving import EndpointConfig


def _load(url: str, stop: threading.Event, seen: list[tuple[int, int]]) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            r = client.post("/v1/models/clf/predict", json={"rows": [row(0.3), row(-0.3)]})
            seen.append((r.status_code, r.json().get("version", -1)))


def _wait_for_version(seen: list[tuple[int, int]], version: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    start = len(seen)
    while time.monotonic() < deadline:
        if sum(1 for _, v in seen[start:] if v == version) >= 20:
            return
        time.sleep(0.05)
    raise AssertionError(f"version {version} never served; last seen {seen[-5:]}")


def test_promotion_and_rollback_swap_the_model_without_failing_a_request(sklearn_model, serve):
    from serving_support import training_frame
    from sklearn.ensemble import RandomForestClassifier

    from forgeml.registry import promote, register_model, rollback

    srv = serve([EndpointConfig("clf", "clf@production")])
    x, y = training_frame(seed=11)
    # a slower-to-load model makes the swap window wide enough to matter
    v2 = register_model("clf", RandomForestClassifier(n_estimators=60, random_state=0).fit(x, y),
                        input_example=x.head(5))
    stop = threading.Event()
    seen: list[list[tuple[int, int]]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=_load, args=(srv.url, stop, s)) for s in seen]
    for t in threads:
        t.start()
    try:
        _wait_for_version(seen[0], 1)
        promote("clf", v2.version, "production", reason="better forest")
        _wait_for_version(seen[0], 2)
        rollback("clf")
        _wait_for_version(seen[0], 1)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    everything = [s for per_thread in seen for s in per_thread]
    assert len(everything) > 100
    assert {status for status, _ in everything} == {200}
    for per_thread in seen:  # each client saw 1, then 2, then 1 again: never a flip-flop
        versions = [v for _, v in per_thread]
        changes = [b for a, b in zip(versions, versions[1:]) if a != b]
        assert changes == [2, 1], changes
    text = srv.client.get("/metrics").text
    assert 'forgeml_serving_model_swaps_total{arm="primary",model="clf"} 2.0' in text
