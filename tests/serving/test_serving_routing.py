"""Family 2: a prediction goes only to the request it belongs to, whatever the batch, arm or model failure."""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_support import register_function

from forgeml.serving import BatchingConfig, EndpointConfig
from forgeml.serving.batching import BatchItem, DynamicBatcher

RAISES, NAN, DROPS = 13.0, 7.0, 99.0


def tricky(frame: pd.DataFrame):
    """x*10 per row, except: 13 raises for the whole call, 7 gives NaN, 99 drops the call's last output."""
    x = frame["x"].to_numpy(dtype=float)
    if (x == RAISES).any():
        raise RuntimeError("thirteen is unlucky")
    out = x * 10.0
    out[x == NAN] = np.nan
    return out[:-1] if (x == DROPS).any() else out


def alone(rows: list[float]):
    """What one request gets when it is served by itself: its predictions, or None for an error."""
    try:
        out = tricky(pd.DataFrame({"x": rows}))
    except RuntimeError:
        return None
    if len(out) != len(rows):
        return None
    return [None if math.isnan(v) else float(v) for v in out]


def test_a_batch_giving_too_few_results_fails_its_requests_instead_of_hanging_or_shifting():
    def short(items):
        return [[v * 10 for v in i.columns["x"]] for i in items][:-1] if len(items) > 1 else \
            [[v * 10 for v in items[0].columns["x"]]]

    async def main():
        batcher = DynamicBatcher(short, BatchingConfig(True, max_batch_size=64, max_delay_ms=30))
        jobs = [batcher.submit(BatchItem({"x": [float(i)]}, 1)) for i in range(6)]
        out = await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), 10)
        await batcher.close()
        return out

    assert asyncio.run(main()) == [[i * 10.0] for i in range(6)]


@pytest.fixture
def routed(workspace, serve):
    """One endpoint per traffic mode, every arm the same tricky function, batching forced by a delay."""
    from forgeml.registry import promote, set_alias

    v1 = register_function("fn", tricky)
    promote("fn", v1.version, "production", reason="test")
    v2 = register_function("fn", tricky)
    set_alias("fn", "next", v2.version)
    batching = BatchingConfig(True, max_batch_size=16, max_delay_ms=25)
    configs = [EndpointConfig("plain", "fn@production", batching=batching),
               EndpointConfig("shadowed", "fn@production", shadow="fn@next", batching=batching),
               EndpointConfig("ab", "fn@production", ab_model="fn@next", ab_fraction=0.5, batching=batching),
               EndpointConfig("canary", "fn@production", canary_model="fn@next", batching=batching)]
    return serve(configs)


requests = st.lists(st.lists(st.sampled_from([1.0, 2.0, 3.5, NAN, RAISES, DROPS, -4.0]), min_size=1, max_size=4),
                    min_size=2, max_size=8)


def test_random_batches_answer_like_unbatched_calls_under_every_traffic_mode(routed):
    srv = routed
    pool = ThreadPoolExecutor(max_workers=8)

    @settings(max_examples=20, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(batch=requests, endpoint=st.sampled_from(["plain", "shadowed", "ab", "canary"]))
    def check(batch, endpoint):
        bodies = [{"rows": [{"x": x} for x in rows], "key": f"k{i}"} for i, rows in enumerate(batch)]
        responses = list(pool.map(lambda body: srv.predict(endpoint, body), bodies))
        for rows, response in zip(batch, responses):
            expected = alone(rows)
            if expected is None:
                assert response.status_code == 500, (rows, response.text)
                assert "model fn v" in response.json()["error"]
            else:
                assert response.status_code == 200, (rows, response.text)
                assert response.json()["predictions"] == expected, (rows, batch)

    try:
        check()
    finally:
        pool.shutdown()
    sizes = srv.client.get("/metrics").text
    assert "forgeml_serving_batch_size" in sizes


def test_a_model_that_miscounts_is_named_in_the_error(routed):
    r = routed.predict("plain", {"rows": [{"x": DROPS}, {"x": 1.0}]})
    assert r.status_code == 500
    assert r.json()["error"] == "prediction failed: model fn v1 returned 1 outputs for 2 rows"
    r = routed.predict("plain", {"rows": [{"x": RAISES}]})
    assert r.json()["error"] == "prediction failed: model fn v1 raised RuntimeError: thirteen is unlucky"
