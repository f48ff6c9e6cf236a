"""`forgeml serve --workers auto`: the decision rule, and a real server that adds a worker under load and
removes it when the load is gone, without failing a request."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pandas as pd
import pytest
from serving_support import register_function

from forgeml.serving.autoscale import AutoscalePolicy, Signals, decide


def test_workers_are_added_on_queue_latency_or_gpu_and_removed_when_calm_after_the_cooldowns():
    policy = AutoscalePolicy(min_workers=1, max_workers=3, target_in_flight=4, target_p99_ms=100, gpu_util_pct=80,
                             up_cooldown_s=5, down_cooldown_s=30)
    assert decide(policy, 1, Signals(1, 9.0, 20.0), 10) == (2, "9.0 requests in flight per worker > 4")
    assert decide(policy, 1, Signals(1, 9.0, 20.0), 1) == (1, "")  # still cooling down
    assert decide(policy, 2, Signals(2, 2.0, 250.0), 10)[0] == 3
    assert decide(policy, 2, Signals(2, 2.0, 20.0, gpu_pct=95.0), 10) == (3, "GPU 95% > 80%")
    assert decide(policy, 3, Signals(3, 30.0, 500.0), 10) == (3, "")  # at the maximum
    assert decide(policy, 3, Signals(3, 1.0, 20.0), 31)[0] == 2
    assert decide(policy, 3, Signals(3, 1.0, 20.0), 29) == (3, "")
    assert decide(policy, 2, Signals(2, 3.0, 20.0), 60) == (2, "")  # one worker would get 3 > 4/2: stay
    assert decide(policy, 1, Signals(1, 0.0, None), 60) == (1, "")  # never under the minimum


def test_a_bad_autoscale_table_is_a_one_line_error(workspace):
    from forgeml.errors import ForgeError
    from forgeml.serving.autoscale import policy_from
    from forgeml.serving.config import serving_settings
    from forgeml.workspace import Workspace

    (workspace.root / "plugins.toml").write_text("[serving.autoscale]\nmin_workers = 3\nmax_workers = 2\n")
    with pytest.raises(ForgeError, match="need 1 <= min_workers <= max_workers, got 3 and 2") as err:
        policy_from(serving_settings(Workspace(workspace.root)).autoscale)
    assert "\n" not in str(err.value)


class Busy:
    """x * 2 after 30 ms of work: a few concurrent callers keep a worker's queue full."""

    def __call__(self, frame: pd.DataFrame) -> Any:
        time.sleep(0.03)
        return frame["x"].to_numpy() * 2


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_workers_auto_adds_a_worker_under_load_and_removes_it_after(workspace):
    from forgeml.registry import promote

    mv = register_function("fn", Busy())
    promote("fn", mv.version, "production", reason="test")
    with open(workspace.root / "plugins.toml", "a") as f:
        f.write("\n[serving.autoscale]\nmin_workers = 1\nmax_workers = 2\ntarget_in_flight = 1.5\n"
                "up_cooldown_s = 0\ndown_cooldown_s = 1\n[serving.endpoints.fn.batching]\nenabled = false\n")
    port = _free_port()
    # the worker processes unpickle Busy from this module
    here = os.path.dirname(__file__)
    env = {**os.environ, "FORGEML_HOME": str(workspace.root),
           "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "forgeml", "serve", "fn@production", "--port", str(port),
                             "--workers", "auto"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    codes: list[int] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set():
                codes.append(c.post("/v1/models/fn/predict", json={"rows": [{"x": 1.0}]}).status_code)

    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, "".join(lines)
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.1)
        assert any("autoscaled: 1 to 2 workers" in line for line in lines)
        threads = [threading.Thread(target=client, daemon=True) for _ in range(6)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while not any("autoscale 1 -> 2 workers" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            time.sleep(0.1)
        time.sleep(3)  # the new worker loads and takes connections
        assert 'forgeml_serving_workers 2.0' in httpx.get(url + "/metrics", timeout=5).text
        stop.set()
        for t in threads:
            t.join(timeout=30)
        deadline = time.monotonic() + 60
        while not any("autoscale 2 -> 1 workers" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            time.sleep(0.1)
        assert codes and set(codes) == {200}, "no request failed while workers came and went"
        assert httpx.post(url + "/v1/models/fn/predict", json={"rows": [{"x": 2.0}]}, timeout=10).json()[
            "predictions"] == [4.0]
    finally:
        stop.set()
        proc.terminate()
        proc.wait(timeout=30)
