"""Helpers for serving tests: data, registered models, a real server on a free loopback port, a manual clock."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd

FEATURES = [f"f{i}" for i in range(5)]


def training_frame(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Deterministic features and a label that depends on f0 and f1."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    y = ((x.f0 + 0.5 * x.f1) > 0).astype(int)
    return x, y


def row(value: float = 0.5) -> dict[str, float]:
    """One valid request row."""
    return {name: value for name in FEATURES}


def register_function(name: str, fn: Callable[[pd.DataFrame], Any], columns: Sequence[str] = ("x",),
                      **kwargs: Any) -> Any:
    """Register a plain Python function model over float columns."""
    from forgeml.registry import register_model

    example = pd.DataFrame({c: [1.0, 2.0] for c in columns})
    return register_model(name, fn, flavor="python", input_example=example, **kwargs)


@dataclass
class RunningServer:
    """A uvicorn server running the app in a thread, and an HTTP client for it."""

    app: Any
    server: Any
    thread: threading.Thread
    url: str
    client: httpx.Client

    @property
    def state(self) -> Any:
        """The app's ServingState."""
        return self.app.state.serving

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until /readyz answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.client.get("/readyz").status_code == 200:
                return
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout}s: {self.client.get('/readyz').json()}")

    def predict(self, name: str, body: Any, **kwargs: Any) -> httpx.Response:
        """POST a body to a model's predict route."""
        return self.client.post(f"/v1/models/{name}/predict", json=body, **kwargs)

    def stop(self) -> None:
        """Stop the server and wait for its lifespan shutdown (which flushes the prediction log)."""
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_server(app: Any) -> RunningServer:
    """Serve an app on a free loopback port from a background thread."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=30)
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("uvicorn did not start")
        time.sleep(0.02)
    return RunningServer(app, server, thread, url, client)


class ManualClock:
    """A clock a test moves forward by hand instead of sleeping."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class SlowToLoad:
    """A function model that takes a while to unpickle, so readiness can be watched turning true."""

    delay_s = 1.5

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        time.sleep(self.delay_s)

    def __call__(self, frame: pd.DataFrame) -> Any:
        return frame["x"].to_numpy() * 2


class WhichProcess:
    """A function model answering with the process id of the worker that ran it."""

    def __call__(self, frame: pd.DataFrame) -> Any:
        import os

        return np.full(len(frame), float(os.getpid()))
