"""Serving under pressure: cached and rule links, latency budgets, latency breakers and load shedding.

Every test runs the real server over HTTP with models from the registry; slow and hanging models
sleep while a flag file exists. Cache TTLs and breaker cool-downs run on a manual clock.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
from serving_support import ManualClock, register_function

from forgeml.serving import EndpointConfig, read_prediction_log
from forgeml.serving.pressure import Admission
from forgeml.serving.resilience import CircuitBreaker, FallbackConfig, GuardedLookup


class Sluggish:
    """Returns x * factor; while its flag file exists it sleeps ``delay`` s first, or raises when delay < 0."""

    def __init__(self, flag: str, delay: float, factor: float = 2.0):
        self.flag = flag
        self.delay = delay
        self.factor = factor

    def __call__(self, frame: pd.DataFrame) -> Any:
        if Path(self.flag).exists():
            if self.delay < 0:
                raise RuntimeError("model backend is down")
            time.sleep(self.delay)
        return frame["x"].to_numpy() * self.factor


def _rows(*xs: float, **extra: Any) -> dict[str, Any]:
    return {"rows": [{"x": x, **extra} for x in xs]}


def _model(name: str, flag: Path, delay: float, factor: float = 2.0) -> None:
    from forgeml.registry import promote

    mv = register_function(name, Sluggish(str(flag), delay, factor))
    promote(name, mv.version, "production", reason="test")


def test_the_cache_then_the_rule_answer_when_the_model_fails(workspace, tmp_path, serve):
    down = tmp_path / "down"
    _model("fn", down, -1)
    clock = ManualClock()
    fallback = FallbackConfig(cache_ttl_s=60, rule="x * 10 if x > 0 else 0", constant=-1.0, breaker_failures=100)
    srv = serve([EndpointConfig("fn", "fn@production", fallback=fallback)], clock=clock)
    assert srv.predict("fn", _rows(1.0, 2.0)).json()["predictions"] == [2.0, 4.0]

    down.touch()
    cached = srv.predict("fn", _rows(2.0, 1.0)).json()
    assert cached["link"] == "cache" and cached["predictions"] == [4.0, 2.0] and cached["version"] == 1
    ruled = srv.predict("fn", _rows(1.0, 3.0)).json()  # 3.0 was never predicted: the rule answers the request
    assert ruled["link"] == "rule" and ruled["predictions"] == [10.0, 30.0]
    assert ruled["fallback_reason"] == "ModelFailed"
    clock.advance(61)  # the cached answers are too old now
    assert srv.predict("fn", _rows(1.0)).json()["link"] == "rule"
    assert srv.predict("fn", {"rows": [{"y": 1.0}]}).status_code == 422  # a wrong request stays a 422
    down.unlink()
    assert srv.predict("fn", _rows(5.0)).json()["link"] == "primary"
    srv.stop()
    arms = read_prediction_log("fn").to_pandas().groupby("_arm").size().to_dict()
    assert arms == {"primary": 3, "cache": 2, "rule": 3}  # one log row per predicted row


def test_rows_are_cached_by_the_key_field(workspace, tmp_path, serve):
    from forgeml.registry import promote

    down = tmp_path / "down"
    mv = register_function("fn", Sluggish(str(down), -1), columns=("x", "uid"))
    promote("fn", mv.version, "production", reason="test")
    fallback = FallbackConfig(cache_ttl_s=60, constant=0.0, breaker_failures=100)
    srv = serve([EndpointConfig("fn", "fn@production", key_field="uid", fallback=fallback)])
    srv.predict("fn", {"rows": [{"x": 3.0, "uid": 7}]})
    down.touch()
    # the same user with other values: the user's last prediction answers
    hit = srv.predict("fn", {"rows": [{"x": 9.0, "uid": 7}]}).json()
    assert hit["link"] == "cache" and hit["predictions"] == [6.0]
    assert srv.predict("fn", {"rows": [{"x": 3.0, "uid": 8}]}).json()["link"] == "constant"


def test_a_hanging_model_is_cut_off_at_the_budget(workspace, tmp_path, serve):
    slow = tmp_path / "slow"
    _model("fn", slow, 1.5)
    fallback = FallbackConfig(budget_ms=150, constant=-1.0, breaker_failures=100)
    srv = serve([EndpointConfig("fn", "fn@production", fallback=fallback),
                 EndpointConfig("bare", "fn@production", fallback=FallbackConfig(budget_ms=5000))])
    slow.touch()
    started = time.perf_counter()
    r = srv.predict("fn", _rows(1.0))
    assert time.perf_counter() - started < 1.0
    assert r.json()["link"] == "constant" and r.json()["fallback_reason"] == "deadline"
    # the caller's own budget can only be lower than the endpoint's
    started = time.perf_counter()
    assert srv.predict("fn", _rows(1.0), headers={"X-Budget-Ms": "30"}).json()["link"] == "constant"
    assert time.perf_counter() - started < 1.0
    # no fallback: the caller's budget bounds the wait, and the answer is a 503 to retry
    started = time.perf_counter()
    r = srv.predict("bare", _rows(1.0), headers={"X-Budget-Ms": "100"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and "latency budget" in r.json()["error"]
    assert srv.predict("fn", _rows(1.0), headers={"X-Budget-Ms": "soon"}).status_code == 400
    slow.unlink()
    time.sleep(1.6)  # the abandoned calls finish
    assert srv.predict("fn", _rows(1.0)).json()["link"] == "primary"


def test_a_slow_model_opens_its_breaker_on_latency_and_the_backup_answers(workspace, tmp_path, serve):
    slow = tmp_path / "slow"
    _model("fn", slow, 0.06)
    _model("simple", tmp_path / "never", 0, factor=100.0)
    clock = ManualClock()
    fallback = FallbackConfig(model="simple@production", breaker_latency_ms=40, breaker_window=5,
                              breaker_quantile=0.8, breaker_cooldown_s=10)
    srv = serve([EndpointConfig("fn", "fn@production", fallback=fallback)], clock=clock)
    slow.touch()
    links = [srv.predict("fn", _rows(1.0)).json()["link"] for _ in range(7)]
    # five slow answers fill the window; its 80th percentile is over 40 ms, so the breaker opens
    assert links == ["primary"] * 5 + ["backup"] * 2
    assert srv.state.endpoints["fn"].model_breaker.state == "open"
    slow.unlink()
    clock.advance(10)
    assert srv.predict("fn", _rows(1.0)).json()["link"] == "primary"  # a fast probe closes it
    assert srv.state.endpoints["fn"].model_breaker.state == "closed"
    assert srv.client.get("/v1/models/fn").json()["resilience"]["breakers"]["model"] == "closed"


def _burst(srv: Any, name: str, n: int) -> list[Any]:
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: srv.predict(name, _rows(1.0)), range(n)))


def test_over_the_queue_limit_requests_are_shed_at_once(workspace, tmp_path, serve):
    slow = tmp_path / "slow"
    _model("fn", slow, 0.5)
    slow.touch()
    srv = serve([EndpointConfig("fn", "fn@production", fallback=FallbackConfig(max_queue=2, constant=0.0)),
                 EndpointConfig("strict", "fn@production", fallback=FallbackConfig(max_queue=2))])
    answers = _burst(srv, "fn", 6)
    links = sorted(a.json()["link"] for a in answers)
    assert links == ["constant"] * 4 + ["primary"] * 2
    assert {a.json().get("fallback_reason") for a in answers if a.json()["link"] == "constant"} == {"shed_queue_full"}
    answers = _burst(srv, "strict", 6)
    refused = [a for a in answers if a.status_code == 503]
    assert len(refused) == 4 and all(a.headers["retry-after"] == "1" for a in refused)
    metrics = srv.client.get("/metrics").text
    assert 'forgeml_serving_shed_total{model="strict",reason="queue_full"} 4.0' in metrics
    assert 'forgeml_serving_in_flight{model="fn"} 0.0' in metrics


def test_admission_limit_shrinks_on_slow_answers_and_grows_back():
    gate = Admission(max_queue=8, target_ms=10)
    for _ in range(25):
        assert gate.admit() is None
        gate.done(0.05)
    assert int(gate.limit) == 1
    assert gate.admit() is None and gate.admit() == "latency"
    gate.done(0.001)
    for _ in range(200):
        gate.admit()
        gate.done(0.001)
    assert int(gate.limit) == 8
    for _ in range(8):
        gate.admit()
    assert gate.admit() == "queue_full"


def test_latency_breaker_needs_a_full_window_and_a_slow_probe_reopens_it():
    clock = ManualClock()
    breaker = CircuitBreaker(100, 5.0, clock, latency_s=0.1, quantile=0.5, window=4)
    for seconds in (0.5, 0.5, 0.01):
        breaker.success(seconds)
    assert breaker.state == "closed"
    breaker.success(0.5)  # window full, median 0.5 s
    assert breaker.state == "open"
    clock.advance(5)
    assert breaker.allow()
    breaker.success(0.2)  # the probe answered, but too slowly
    assert breaker.state == "open"
    clock.advance(5)
    assert breaker.allow()
    breaker.success(0.01)
    assert breaker.state == "closed"


def test_hung_store_reads_hold_at_most_the_lookup_threads():
    release = threading.Event()
    calls = []

    def hang(served: Any, rows: Any) -> dict[str, list[Any]]:
        calls.append(1)
        release.wait(10)
        return {"clicks": [1] * len(rows)}

    class Served:
        feature_columns = {"clicks": "v:clicks"}

    config = FallbackConfig(feature_defaults={"clicks": 0.0}, lookup_deadline_ms=20, breaker_failures=1000)
    reasons: list[str] = []
    guarded = GuardedLookup(hang, config, CircuitBreaker(1000, 1.0), reasons.append)
    try:
        for _ in range(GuardedLookup.threads + 3):
            assert guarded(Served(), [{"user_id": 1}]) == ({"clicks": [0.0]}, ["clicks"])
        assert len(calls) == GuardedLookup.threads  # the extra requests never queued behind the hung reads
        assert reasons == ["timeout"] * GuardedLookup.threads + ["saturated"] * 3
        release.set()
        time.sleep(0.1)
        assert guarded(Served(), [{"user_id": 1}]) == ({"clicks": [1]}, [])
    finally:
        release.set()
        guarded.close()


def test_the_banner_lists_the_backup_and_the_guards():
    from forgeml.serving.server import banner

    fb = FallbackConfig(model="simple@production", cache_ttl_s=30, rule="x * 2", constant=0.0, budget_ms=50,
                        max_queue=64)
    lines = banner([EndpointConfig("fn", "fn@production", fallback=fb)], {"fn@production": 3, "simple@production": 1},
                   "127.0.0.1", 8080, 1, False)
    assert "fn: fn@production (v3), backup simple@production (v1), batching on" in lines[1]
    assert lines[2] == "    fallback: cached prediction (30 s) -> rule 'x * 2' -> constant 0; budget 50 ms, queue 64"
