"""Dynamic batching: concurrent requests grouped into few predict calls, failures kept to their request."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import httpx
from serving_support import register_function

from forgeml.serving import BatchingConfig, EndpointConfig
from forgeml.serving.batching import BatchItem, DynamicBatcher


def _item(value: float, n: int = 1) -> BatchItem:
    return BatchItem({"x": [value] * n}, n)


class Recorder:
    """A run_batch that remembers each call's row count and is slow enough for a queue to form."""

    def __init__(self, delay: float = 0.02, fail_on: float | None = None):
        self.calls: list[int] = []
        self.delay = delay
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self, items):
        with self.lock:
            self.calls.append(sum(i.n for i in items))
        time.sleep(self.delay)
        if self.fail_on is not None and any(self.fail_on in i.columns["x"] for i in items):
            raise ValueError("bad row")
        return [[v * 10 for v in i.columns["x"]] for i in items]


def test_concurrent_requests_share_predict_calls_up_to_the_batch_size():
    recorder = Recorder()

    async def main():
        batcher = DynamicBatcher(recorder, BatchingConfig(True, max_batch_size=8, max_delay_ms=0))
        results = await asyncio.gather(*(batcher.submit(_item(float(i))) for i in range(40)))
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert results == [[i * 10.0] for i in range(40)]
    assert sum(recorder.calls) == 40
    assert max(recorder.calls) <= 8
    assert len(recorder.calls) <= 8  # 40 rows in batches of up to 8, the first possibly alone


def test_max_delay_waits_to_fill_a_batch():
    recorder = Recorder(delay=0)

    async def main():
        batcher = DynamicBatcher(recorder, BatchingConfig(True, max_batch_size=64, max_delay_ms=50))

        async def later(i):
            await asyncio.sleep(0.002 * i)
            return await batcher.submit(_item(float(i)))

        out = await asyncio.gather(*(later(i) for i in range(10)))
        await batcher.close()
        return out

    assert asyncio.run(main()) == [[i * 10.0] for i in range(10)]
    assert recorder.calls == [10]


def test_one_bad_request_fails_alone():
    recorder = Recorder(fail_on=13.0)

    async def main():
        batcher = DynamicBatcher(recorder, BatchingConfig(True, max_batch_size=64, max_delay_ms=20))
        out = await asyncio.gather(*(batcher.submit(_item(float(i))) for i in range(20)), return_exceptions=True)
        await batcher.close()
        return out

    out = asyncio.run(main())
    assert isinstance(out[13], ValueError)
    assert [r for i, r in enumerate(out) if i != 13] == [[i * 10.0] for i in range(20) if i != 13]


def test_batching_off_runs_each_request_alone():
    recorder = Recorder(delay=0.005)

    async def main():
        batcher = DynamicBatcher(recorder, BatchingConfig(False), threads=4)
        out = await asyncio.gather(*(batcher.submit(_item(float(i), 2)) for i in range(12)))
        await batcher.close()
        return out

    assert asyncio.run(main()) == [[i * 10.0, i * 10.0] for i in range(12)]
    assert recorder.calls == [2] * 12


def _slow_double(frame):
    time.sleep(0.01)
    return frame["x"].to_numpy() * 2


def test_batches_are_visible_in_metrics_over_http(workspace, serve):
    from forgeml.registry import promote

    mv = register_function("fn", _slow_double)
    promote("fn", mv.version, "production", reason="test")
    srv = serve([EndpointConfig("fn", "fn@production", batching=BatchingConfig(True, 32, 5.0))])

    async def burst():
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as client:
            rs = await asyncio.gather(*(client.post("/v1/models/fn/predict", json={"rows": [{"x": float(i)}]})
                                        for i in range(48)))
        return [r.json()["predictions"][0] for r in rs]

    assert asyncio.run(burst()) == [2.0 * i for i in range(48)]
    text = srv.client.get("/metrics").text
    count = float(re.search(r'forgeml_serving_batch_size_count\{model="fn",version="1"\} (\S+)', text).group(1))
    total = float(re.search(r'forgeml_serving_batch_size_sum\{model="fn",version="1"\} (\S+)', text).group(1))
    assert total == 48 and count < 24  # at least two requests per predict call on average
