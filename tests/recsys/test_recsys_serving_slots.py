"""How many recommendations one server process computes at once, and on which thread ([serving] settings)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx


@contextmanager
def _server(shop_ws: tuple[Any, Any], **options: Any) -> Iterator[Any]:
    from serving_support import start_server

    from forgeml.serving import ServerOptions, build_app

    srv = start_server(build_app([], ServerOptions(poll_interval_s=0.2, predlog_flush_s=0.2, **options), shop_ws[0]))
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


class _Watch:
    """Wraps a recommender's recommend: counts the calls running at once and the threads they ran on."""

    def __init__(self, rec: Any, hold_s: float = 0.0, barrier: threading.Barrier | None = None):
        self.inner = rec.recommend
        self.hold_s = hold_s
        self.barrier = barrier
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: set[str] = set()
        rec.recommend = self

    def __call__(self, **kwargs: Any) -> Any:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            if self.barrier is not None:
                self.barrier.wait()
            time.sleep(self.hold_s)  # leaves room for a second request to start, were it allowed to
            return self.inner(**kwargs)
        finally:
            with self.lock:
                self.running -= 1


def _post_all(srv: Any, users: list[int]) -> list[httpx.Response]:
    """POST one request per user at once, each on its own connection."""
    def post(user: int) -> httpx.Response:
        return httpx.post(f"{srv.url}/v1/recommenders/shop/recommend", json={"user": user, "n": 5,
                                                                              "context": {"hour": 9}}, timeout=60)

    with ThreadPoolExecutor(len(users)) as pool:
        return list(pool.map(post, users))


def test_one_slot_computes_one_recommendation_at_a_time_and_answers_every_request(shop_ws: Any) -> None:
    """With recommend_concurrency = 1 on a compute thread, concurrent requests take turns; all are answered."""
    with _server(shop_ws, recommend_concurrency=1, recommend_on_event_loop=False) as srv:
        watch = _Watch(srv.state.recommenders.recommenders["shop"], hold_s=0.15)
        replies = _post_all(srv, [3, 4, 5, 6])
        assert [r.status_code for r in replies] == [200] * 4, [r.text for r in replies]
        assert watch.most == 1 and watch.threads == {"forgeml-recommend_0"}
        assert all(len(r.json()["items"]) == 5 for r in replies)
        assert all(r.json()["latency_ms"] >= 150 for r in replies)  # the time from request to answer
        metrics = srv.client.get("/metrics").text
        assert 'forgeml_recsys_requests_total{recommender="shop",status="ok"} 4.0' in metrics


def test_waiting_requests_are_counted_and_computed_in_arrival_order(shop_ws: Any) -> None:
    """While the one slot is busy, later requests show in forgeml_recsys_queued and then run first come, first served."""
    with _server(shop_ws, recommend_concurrency=1, recommend_on_event_loop=False) as srv:
        rec = srv.state.recommenders.recommenders["shop"]
        inner = rec.recommend
        go = threading.Event()
        started = threading.Event()
        order: list[Any] = []

        def held(**kwargs: Any) -> Any:
            order.append(kwargs["user"])
            started.set()
            go.wait(30)
            return inner(**kwargs)

        rec.recommend = held
        pool = ThreadPoolExecutor(4)
        try:
            def post(user: int) -> Any:
                return pool.submit(httpx.post, f"{srv.url}/v1/recommenders/shop/recommend",
                                   json={"user": user, "n": 3, "context": {"hour": 1}}, timeout=60)

            replies = [post(21)]
            assert started.wait(30)
            for user, queued in ((22, 1), (23, 2), (24, 3)):
                replies.append(post(user))
                _wait_for_metric(srv, f'forgeml_recsys_queued{{recommender="shop"}} {queued}.0')
            go.set()
            assert [r.result(60).status_code for r in replies] == [200] * 4
        finally:
            go.set()
            pool.shutdown(wait=True)
        assert order == [21, 22, 23, 24]
        _wait_for_metric(srv, 'forgeml_recsys_queued{recommender="shop"} 0.0')


def _wait_for_metric(srv: Any, line: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while line not in srv.client.get("/metrics").text:
        assert time.monotonic() < deadline, f"/metrics never showed {line}"
        time.sleep(0.02)


def test_more_slots_compute_side_by_side(shop_ws: Any) -> None:
    """With recommend_concurrency = 2, two requests compute at once (both reach the barrier inside recommend)."""
    with _server(shop_ws, recommend_concurrency=2) as srv:
        assert not srv.state.recommenders.on_loop  # more than one at a time needs threads
        watch = _Watch(srv.state.recommenders.recommenders["shop"], barrier=threading.Barrier(2, timeout=30))
        replies = _post_all(srv, [7, 8])
        assert [r.status_code for r in replies] == [200, 200], [r.text for r in replies]
        assert watch.most == 2


def test_a_server_of_recommenders_only_computes_them_on_its_event_loop(shop_ws: Any) -> None:
    """By default a process serving only recommenders runs them on its event loop; the answer is the same."""
    with _server(shop_ws) as srv:
        assert srv.state.recommenders.on_loop and srv.state.recommenders.executor is None
        watch = _Watch(srv.state.recommenders.recommenders["shop"])
        replies = _post_all(srv, [9, 10, 11])
        assert [r.status_code for r in replies] == [200] * 3, [r.text for r in replies]
        assert watch.most == 1 and watch.threads == {srv.thread.name}
        direct = watch.inner(user=9, n=5, context={"hour": 9})
        assert [i["item"] for i in replies[0].json()["items"]] == [c.item for c in direct.items]


def test_a_failing_recommender_answers_500_and_the_next_request_still_computes(shop_ws: Any) -> None:
    """An unexpected error inside recommend is a JSON 500 that releases its slot."""
    with _server(shop_ws, recommend_on_event_loop=False) as srv:
        rec = srv.state.recommenders.recommenders["shop"]
        inner = rec.recommend
        rec.recommend = lambda **kwargs: 1 / 0
        res = srv.client.post("/v1/recommenders/shop/recommend", json={"user": 1})
        assert res.status_code == 500 and "ZeroDivisionError" in res.json()["error"]
        rec.recommend = inner
        assert srv.client.post("/v1/recommenders/shop/recommend", json={"user": 1, "context": {"hour": 3}}
                               ).status_code == 200
