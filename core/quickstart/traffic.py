"""The model server as its own process on loopback, and request traffic sent to it by entity key."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeml.errors import ForgeError


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ModelServer:
    """`forgeml serve` in a child process: the serving layer's own server, stopped with SIGTERM."""

    def __init__(self, root: Path, uri: str, port: int | None = None, log_path: Path | None = None):
        self.root = Path(root)
        self.uri = uri
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or self.root / ".forgeml" / "quickstart" / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0) -> float:
        """Start the server and wait until /readyz answers 200; return the seconds it took."""
        import httpx

        started = time.perf_counter()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "FORGEML_HOME": str(self.root)}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "forgeml", "serve", self.uri, "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ForgeError(f"the model server exited with status {self.process.returncode}: "
                                     f"{self.log_tail()}")
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return time.perf_counter() - started
                except httpx.HTTPError:
                    pass  # not listening yet
                time.sleep(0.2)
        self.stop()
        raise ForgeError(f"the model server was not ready after {timeout_s:g}s: {self.log_tail()}")

    def served_version(self, model: str) -> int | None:
        """Return the version the server's primary arm serves now."""
        import httpx

        try:
            body = httpx.get(f"{self.url}/v1/models/{model}", timeout=5.0).json()
        except (httpx.HTTPError, ValueError):
            return None
        version = body.get("version") if isinstance(body, dict) else None
        return int(version) if isinstance(version, int) else None

    def log_tail(self, lines: int = 5) -> str:
        """Return the last lines of the server's log, joined on one line."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty server log)"

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop the server gracefully (it flushes its prediction log), killing it if it hangs."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Traffic:
    """What a burst of requests got back."""

    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    versions: dict[int, int] = field(default_factory=dict)
    first_error: str = ""
    mean_score: float = 0.0

    def percentile(self, q: float) -> float:
        """Return a latency percentile in ms (0 without requests)."""
        import numpy as np

        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0


def request_rows(transactions: Any, n: int, seed: int) -> list[dict[str, Any]]:
    """Pick n transactions at random and turn each into a request: the user's key plus the transaction's data."""
    import numpy as np

    idx = np.sort(np.random.default_rng(seed).choice(transactions.num_rows, min(n, transactions.num_rows),
                                                     replace=False))
    picked = transactions.take(idx).select(["user_id", "amount", "category"]).to_pylist()
    return [{"user_id": int(r["user_id"]), "amount": float(r["amount"]), "category": r["category"]} for r in picked]


def send(url: str, model: str, rows: list[dict[str, Any]]) -> Traffic:
    """Send each row as its own request by entity key, one after another, and time the answers."""
    import httpx

    out = Traffic()
    scores = 0.0
    with httpx.Client(timeout=30.0) as client:
        for row in rows:
            started = time.perf_counter()
            try:
                response = client.post(f"{url}/v1/models/{model}/predict", json={"entities": [row]})
            except httpx.HTTPError as e:
                out.requests += 1
                out.errors += 1
                out.first_error = out.first_error or f"{type(e).__name__}: {e}"
                continue
            out.latencies_ms.append((time.perf_counter() - started) * 1000)
            out.requests += 1
            if response.status_code != 200:
                out.errors += 1
                out.first_error = out.first_error or f"HTTP {response.status_code}: {response.text[:300]}"
                continue
            body = response.json()
            out.versions[body["version"]] = out.versions.get(body["version"], 0) + 1
            scores += float(body["predictions"][0])
    ok = out.requests - out.errors
    out.mean_score = scores / ok if ok else 0.0
    return out


def wait_for_log(workspace: Any, model: str, rows: int, timeout_s: float = 30.0) -> int:
    """Wait until the server's prediction log holds at least `rows` rows of a model; return how many it holds."""
    from forgeml.serving import read_prediction_log

    deadline = time.monotonic() + timeout_s
    seen = 0
    while True:
        seen = read_prediction_log(model, workspace=workspace).num_rows
        if seen >= rows or time.monotonic() > deadline:
            return seen
        time.sleep(0.3)
