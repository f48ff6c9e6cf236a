"""Chaos: the real server under load while its online store (a real redis-server) is killed or frozen,
its model hangs, or more requests arrive than it can take.

Each test asserts what the clients get (an answer marked with its fallback, never a 500, never a
hang) and that the server goes back to the primary path once the fault ends. The redis-server is
this test's own (tests/services/redis.sh in a private folder and port), killed with SIGKILL,
frozen with SIGSTOP and restarted with its append-only file.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from serving_support import register_function, start_server

from forgeml.serving import EndpointConfig, ServerOptions, build_app
from forgeml.serving.resilience import FallbackConfig


def linear_score(frame: pd.DataFrame) -> Any:
    """spend * 10 + clicks."""
    return (frame["spend"] * 10 + frame["clicks"]).to_numpy()


class Hangs:
    """x * 2, sleeping 2 s per call while its flag file exists."""

    def __init__(self, flag: str):
        self.flag = flag

    def __call__(self, frame: pd.DataFrame) -> Any:
        if Path(self.flag).exists():
            time.sleep(2.0)
        return frame["x"].to_numpy() * 2


@pytest.fixture
def redis_workspace(tmp_path, private_redis, monkeypatch):
    """A workspace whose online store is the private redis, holding clicks and spend of users 1-3."""
    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, PushSource
    from forgeml.registry import promote, register_model
    from forgeml.workspace import Workspace, set_current

    root = tmp_path / "ws"
    root.mkdir()
    (root / "plugins.toml").write_text(f'[storage.online]\nplugin = "redis"\nurl = "{private_redis.url}"\n')
    ws = Workspace.init(root)
    monkeypatch.setenv("FORGEML_HOME", str(root))
    set_current(ws)
    user = Entity("user", join_keys=["user_id"])
    stats = FeatureView("user_stats", entities=[user], source=PushSource("user_stats_push"),
                        features=[Feature("clicks", "int64"), Feature("spend", "float64")])
    store = FeatureStore(ws)
    store.apply([user, stats])
    now = pd.Timestamp.now(tz="UTC")
    store.push("user_stats", pd.DataFrame({"user_id": [1, 2, 3], "event_timestamp": [now] * 3,
                                           "clicks": [5, 7, 9], "spend": [2.0, 4.0, 8.0]}))
    train = pd.DataFrame({"clicks": [1, 3, 5, 7], "spend": [1.0, 2.0, 3.0, 6.0]})  # means 4 and 3
    mv = register_model("scorer", linear_score, flavor="python", input_example=train.head(2), training_data=train,
                        feature_views=["user_stats:clicks", "user_stats:spend"], entity_keys=["user_id"])
    promote("scorer", mv.version, "production", reason="test")
    try:
        yield ws
    finally:
        set_current(None)
        ws.close()


class Load:
    """Client threads posting one body in a loop; every answer is kept with its time and latency."""

    def __init__(self, url: str, path: str, body: dict[str, Any], threads: int = 4):
        self.answers: list[tuple[float, float, int, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(url, path, body), daemon=True)
                         for _ in range(threads)]

    def _run(self, url: str, path: str, body: dict[str, Any]) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                r = client.post(path, json=body)
                answer = r.json()
                if r.status_code != 200:
                    answer["retry-after"] = r.headers.get("retry-after")
                with self._lock:
                    self.answers.append((started, time.monotonic() - started, r.status_code, answer))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def since(self, moment: float) -> list[tuple[float, float, int, dict[str, Any]]]:
        """The answers to requests sent at or after ``moment``."""
        with self._lock:
            return [a for a in self.answers if a[0] >= moment]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll until the condition holds; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)


def p95(values: list[float]) -> float:
    """The 95th percentile: the bounds below hold for the requests, not for a machine that stalls a thread."""
    ranked = sorted(values)
    return ranked[int(0.95 * (len(ranked) - 1))]


def _served(ws: Any, fallback: FallbackConfig) -> Any:
    srv = start_server(build_app([EndpointConfig("scorer", "scorer@production", fallback=fallback)],
                                 ServerOptions(poll_interval_s=0.5, predlog_flush_s=0.2), ws))
    srv.wait_ready()
    return srv


BODY = {"entities": [{"user_id": 2}]}
PRIMARY_ANSWER = [4.0 * 10 + 7]
DEFAULT_ANSWER = [3.0 * 10 + 4]  # the training means of spend and clicks


def test_killing_redis_under_load_is_answered_from_training_means_and_heals_on_restart(redis_workspace,
                                                                                      private_redis):
    fallback = FallbackConfig(training_defaults=True, lookup_deadline_ms=250, breaker_failures=3,
                              breaker_cooldown_s=0.5)
    srv = _served(redis_workspace, fallback)
    try:
        with Load(srv.url, "/v1/models/scorer/predict", BODY) as load:
            wait_for(lambda: len(load.answers) > 20, 10, "steady traffic")
            killed = time.monotonic()
            private_redis.kill()
            wait_for(lambda: any(a[3].get("feature_defaults") for a in load.since(killed)), 10,
                     "an answer from defaults")
            time.sleep(1.0)  # the store stays down across several breaker cool-downs
            restarted = time.monotonic()
            private_redis.start()
            wait_for(lambda: any(not a[3].get("feature_defaults") for a in load.since(restarted)), 15,
                     "an answer from the store after its restart")
            healed = time.monotonic()
            wait_for(lambda: len(load.since(healed + 0.5)) > 20, 10, "traffic after the restart")
        answers = load.answers
        assert {a[2] for a in answers} == {200}, "every request is answered"
        during = [a for a in load.since(killed) if a[0] < restarted]
        assert during and all(a[3]["predictions"] == DEFAULT_ANSWER for a in during
                              if a[3].get("feature_defaults"))
        assert sum(1 for a in during if a[3].get("feature_defaults")) >= len(during) - 4  # in flight at the kill
        after = load.since(healed + 0.5)
        assert all(a[3]["predictions"] == PRIMARY_ANSWER for a in after if "feature_defaults" not in a[3])
        # a read may still miss its deadline on a loaded machine, but the store answers again
        assert sum(1 for a in after if "feature_defaults" not in a[3]) >= 0.9 * len(after) > 0
        metrics = srv.client.get("/metrics").text
        assert 'forgeml_serving_circuit_state{dependency="online_store",model="scorer"} 0.0' in metrics
        assert 'forgeml_serving_feature_defaults_total{model="scorer",reason="open"}' in metrics
    finally:
        srv.stop()


def test_a_frozen_redis_is_cut_off_by_the_deadline_and_never_hangs_a_request(redis_workspace, private_redis):
    fallback = FallbackConfig(training_defaults=True, lookup_deadline_ms=50, breaker_failures=5,
                              breaker_cooldown_s=0.5)
    srv = _served(redis_workspace, fallback)
    try:
        with Load(srv.url, "/v1/models/scorer/predict", BODY) as load:
            wait_for(lambda: len(load.answers) > 20, 10, "steady traffic")
            frozen = time.monotonic()
            private_redis.freeze()
            time.sleep(1.5)
            thawed = time.monotonic()
            private_redis.thaw()
            wait_for(lambda: any(not a[3].get("feature_defaults") for a in load.since(thawed)), 15,
                     "an answer from the store after it was thawed")
        during = [a for a in load.since(frozen) if a[0] < thawed]
        assert {a[2] for a in load.answers} == {200}
        assert sum(1 for a in during if a[3].get("feature_defaults")) >= 10
        assert p95([a[1] for a in during]) < 1.0, "no request waited on the frozen store (frozen 1.5 s)"
    finally:
        srv.stop()


def test_a_hanging_model_under_load_is_answered_within_the_budget_and_recovers(workspace, tmp_path):
    from forgeml.registry import promote

    flag = tmp_path / "hang"
    mv = register_function("fn", Hangs(str(flag)))
    promote("fn", mv.version, "production", reason="test")
    fallback = FallbackConfig(budget_ms=100, rule="x * 3", breaker_failures=2, breaker_cooldown_s=0.5)
    srv = start_server(build_app([EndpointConfig("fn", "fn@production", fallback=fallback)],
                                 ServerOptions(poll_interval_s=0.5, predlog_flush_s=0.2), workspace))
    try:
        srv.wait_ready()
        with Load(srv.url, "/v1/models/fn/predict", {"rows": [{"x": 1.0}]}) as load:
            wait_for(lambda: len(load.answers) > 20, 10, "steady traffic")
            hung = time.monotonic()
            flag.touch()
            time.sleep(1.5)
            ended = time.monotonic()
            flag.unlink()
            wait_for(lambda: any(a[3]["link"] == "primary" for a in load.since(ended + 2.0)), 15,
                     "a primary answer after the model recovered")
        during = [a for a in load.since(hung) if a[0] < ended]
        assert {a[2] for a in load.answers} == {200}
        assert {a[3]["link"] for a in during} <= {"primary", "rule"} and any(a[3]["link"] == "rule" for a in during)
        assert all(a[3]["predictions"] == [3.0] for a in during if a[3]["link"] == "rule")
        assert p95([a[1] for a in during]) < 1.0, "no request waited on the hung model (2 s a call)"
    finally:
        srv.stop()


def test_a_saturated_endpoint_sheds_with_503_and_retry_after_and_never_500s(workspace, tmp_path):
    from forgeml.registry import promote

    flag = tmp_path / "slow"
    mv = register_function("fn", Hangs(str(flag)))
    promote("fn", mv.version, "production", reason="test")
    fallback = FallbackConfig(max_queue=2, budget_ms=3000)
    srv = start_server(build_app([EndpointConfig("fn", "fn@production", fallback=fallback)],
                                 ServerOptions(poll_interval_s=0.5, predlog_flush_s=0.2), workspace))
    try:
        srv.wait_ready()
        flag.touch()
        with Load(srv.url, "/v1/models/fn/predict", {"rows": [{"x": 1.0}]}, threads=12) as load:
            time.sleep(2.5)
            flag.unlink()
            ended = time.monotonic()
            wait_for(lambda: len([a for a in load.since(ended + 2.5) if a[2] == 200]) > 20, 20,
                     "answers once the model is fast again")
        codes = {a[2] for a in load.answers}
        assert codes <= {200, 503} and 503 in codes
        refused = [a for a in load.answers if a[2] == 503]
        assert all(a[3]["retry-after"] == "1" for a in refused)
        # shed at admission, or (admitted behind a 2 s call) past the 3 s budget
        shed = [a for a in refused if "retry shortly" in a[3]["error"]]
        assert shed and all("retry shortly" in a[3]["error"] or "latency budget" in a[3]["error"] for a in refused)
        # queued, a request would wait for the 2 s model calls ahead of it
        assert p95([a[1] for a in shed]) < 1.0, "a shed request is refused at once, not queued"
    finally:
        srv.stop()
