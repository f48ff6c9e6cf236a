"""Platform API floors: token check + rate limit, remote metric logging, registry resolve under concurrency.

Prints one JSON line. The peer is an MLflow tracking server (SQLite backend) run side by side:
`MlflowClient.log_batch` in chunks of 1,000 (MLflow's most per call) and the registry's
get-by-alias REST call at the same concurrency. MLflow runs from its own interpreter
(FORGEML_BENCH_MLFLOW_PYTHON, see common.py) or this one when it imports mlflow; otherwise the peer
is reported as skipped.

The app's own CPU per resolve is measured first, its ASGI callable called directly in this process
(with /healthz beside it as the floor every request pays in Starlette). Resolve latency is measured
twice: from httpx clients in 8 threads of this process (as the MLflow peer is, with requests in 8
threads) and from a lean asyncio client in a process of its own, whose figures hold only the server's
and the operating system's time; the floor is judged on the latter.
Both lean-client runs report the server process's and the client's CPU per request (psutil), and the
same client against /healthz is the control: its tail is the machine's, not the resolve's.

Usage: python benchmarks/server.py [--points 200000] [--requests 400] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import comparison, finish, peer_python  # noqa: E402
from serving import run_load  # noqa: E402

CONCURRENCY = 8

PEER_SCRIPT = r"""
import json, sys, threading, time
import requests
from mlflow import MlflowClient
from mlflow.entities import Metric
url, points, requests_per_thread, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
client = MlflowClient(url)
run = client.create_run(client.create_experiment("bench")).info.run_id
now = int(time.time() * 1000)
started = time.perf_counter()
for start in range(0, points, 1000):
    client.log_batch(run, metrics=[Metric("loss", 1.0 / (s + 1), now, s) for s in range(start, min(points, start + 1000))])
elapsed = time.perf_counter() - started
client.create_registered_model("fraud")
client.create_model_version("fraud", client.get_run(run).info.artifact_uri + "/model", run_id=run)
client.set_registered_model_alias("fraud", "champion", "1")
latencies, lock = [], threading.Lock()
def worker():
    s = requests.Session()
    mine = []
    for _ in range(requests_per_thread):
        t = time.perf_counter()
        r = s.get(url + "/api/2.0/mlflow/registered-models/alias", params={"name": "fraud", "alias": "champion"})
        assert r.status_code == 200, r.text
        mine.append(time.perf_counter() - t)
    with lock:
        latencies.extend(mine)
threads = [threading.Thread(target=worker) for _ in range(concurrency)]
t0 = time.perf_counter()
[t.start() for t in threads]; [t.join() for t in threads]
wall = time.perf_counter() - t0
latencies.sort()
import mlflow
print(json.dumps({"version": mlflow.__version__, "log_batch_points_per_s": round(points / elapsed),
                  "resolve_p50_ms": round(latencies[len(latencies) // 2] * 1e3, 2),
                  "resolve_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1e3, 2),
                  "resolve_req_per_s": round(len(latencies) / wall)}))
"""


def free_port() -> int:
    """Return a free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    """Wait until url answers (any status) or the process dies."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


def bench_token_check(ws: object, rounds: int = 5, n: int = 100_000) -> dict:
    """Time authenticate() plus one token-bucket take, in-process, per request."""
    from forgeml.auth import authenticate, create_token
    from forgeml.auth.ratelimit import RateLimiter

    token, _ = create_token("bench", role="scientist", workspace=ws)
    header = f"Bearer {token}"
    limiter = RateLimiter(1e12, 1e12)
    authenticate(ws, header)
    best = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(n):
            principal = authenticate(ws, header, "127.0.0.1")
            limiter.take(principal.token_id)
        best.append((time.perf_counter() - started) / n * 1e6)
    return {"median_us": round(statistics.median(best), 2), "best_us": round(min(best), 2)}


def bench_app_cpu(ws: object, token: str, n: int = 3000, rounds: int = 5) -> dict:
    """CPU per request of the app alone (its ASGI callable called directly, no sockets), resolve and /healthz.

    Process CPU, so the access-log writer thread's share counts; the machine's load moves it far less
    than latency. The best of a few rounds is reported, with the median beside it.
    """
    import asyncio

    from forgeml.server.api import ServerOptions
    from forgeml.server.app import build_app, warm

    app = build_app(ws, ServerOptions(rate_per_s=0.0))
    warm(ws)
    answers: list[int] = []

    def scope(path: str, query: bytes, headers: list[tuple[bytes, bytes]]) -> dict:
        return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": query,
                "headers": [(b"host", b"127.0.0.1"), *headers], "client": ("127.0.0.1", 40000),
                "server": ("127.0.0.1", 8765), "state": {}}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            answers.append(message["status"])

    async def run(sc: dict, count: int) -> float:
        started = time.process_time()
        for _ in range(count):
            await app(dict(sc), receive, send)
        return (time.process_time() - started) / count * 1e6

    async def main() -> dict:
        resolve = scope("/api/v1/resolve", b"uri=fraud%40champion", [(b"authorization", f"Bearer {token}".encode())])
        healthz = scope("/healthz", b"", [])
        await run(resolve, 200)
        times: dict[str, list[float]] = {"resolve": [], "healthz": []}
        for _ in range(rounds):
            times["resolve"].append(await run(resolve, n))
            times["healthz"].append(await run(healthz, n))
        return {f"{k}_{stat}_us": round(f(v), 1) for k, v in times.items()
                for stat, f in (("best", min), ("median", statistics.median))}

    out = asyncio.run(main())
    if set(answers) != {200}:
        raise RuntimeError(f"the app answered {sorted(set(answers))}, not only 200")
    return out


def bench_remote_logging(url: str, token: str, points: int) -> dict:
    """Log points through the Python API with FORGEML_URL set; time until the server stored them all."""
    os.environ["FORGEML_URL"], os.environ["FORGEML_TOKEN"] = url, token
    try:
        import forgeml

        with forgeml.start_run(name="bench", experiment="bench") as run:
            started = time.perf_counter()
            for step in range(points):
                forgeml.log_metric("loss", 1.0 / (step + 1), step=step)
            queued = time.perf_counter() - started
            run.flush()
            elapsed = time.perf_counter() - started
        return {"points": points, "points_per_s": round(points / elapsed), "log_call_us": round(queued / points * 1e6, 2)}
    finally:
        del os.environ["FORGEML_URL"], os.environ["FORGEML_TOKEN"]


def bench_resolve(url: str, token: str, per_thread: int) -> dict:
    """GET /resolve?uri=fraud@champion from CONCURRENCY threads, one keep-alive connection each."""
    import httpx

    latencies: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = []
        with httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {token}"}) as c:
            for _ in range(per_thread):
                t = time.perf_counter()
                r = c.get("/resolve", params={"uri": "fraud@champion"})
                mine.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "p50_ms": round(latencies[len(latencies) // 2] * 1e3, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1e3, 2),
            "req_per_s": round(len(latencies) / wall)}


def measured_load(pid: int, port: int, path: str, seconds: float, tmp: Path,
                  headers: dict[str, str] | None = None) -> dict:
    """Run the lean client against path at CONCURRENCY; add the server's CPU per answer over the whole run."""
    import psutil

    server = psutil.Process(pid)
    before = server.cpu_times()
    out = run_load(port, path, [""], CONCURRENCY, seconds, 1.0, tmp, "GET", headers)
    after = server.cpu_times()
    used = (after.user + after.system) - (before.user + before.system)
    # both CPU figures count every answer, warm-up included; client below server: the server is the bottleneck
    out["server_cpu_ms_per_request"] = round(used / max(1, out["answered_in_all"]) * 1e3, 3)
    return out


def bench_mlflow(python: str, root: Path, points: int, per_thread: int) -> dict:
    """Run an MLflow tracking server and the same workloads against it, in MLflow's own Python."""
    port = free_port()
    server = subprocess.Popen([python, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                               "--default-artifact-root", str(root / "artifacts"), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root,
                              start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", server, 180)
        out = subprocess.run([python, "-c", PEER_SCRIPT, f"http://127.0.0.1:{port}", str(points), str(per_thread),
                              str(CONCURRENCY)], capture_output=True, text=True, timeout=1800, cwd=root)
        if out.returncode != 0:
            return {"skipped": f"mlflow workload failed: {out.stderr.strip().splitlines()[-1:]}"}
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # its workers and job consumers too
        server.wait(timeout=30)


def main() -> None:
    """Run every workload and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=400, help="resolve requests per thread")
    parser.add_argument("--seconds", type=float, default=5.0, help="resolve load from the lean client")
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression

    from forgeml.auth import create_token
    from forgeml.registry import register_model, set_alias
    from forgeml.workspace import Workspace

    # a shared machine's load moves every latency here; it is printed so runs can be compared fairly
    result: dict = {"concurrency": CONCURRENCY}
    with tempfile.TemporaryDirectory(prefix="forgeml-bench-server-") as tmp:
        root = Path(tmp) / "ws"
        ws = Workspace.init(root)
        text = (root / "plugins.toml").read_text().replace("rate_per_s = 200.0", "rate_per_s = 0.0")
        (root / "plugins.toml").write_text(text)
        result["token_check_and_rate_limit"] = bench_token_check(ws)
        register_model("fraud", LogisticRegression().fit([[0.0], [1.0]], [0, 1]), workspace=ws)
        set_alias("fraud", "champion", 1, workspace=ws)
        token, _ = create_token("bench-client", role="scientist", workspace=ws)
        result["app_cpu_per_request"] = bench_app_cpu(ws, token)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "forgeml", "server", "--port", str(port)], cwd=root,
                                  env={**os.environ, "FORGEML_HOME": str(root)})
        try:
            wait_http(url + "/healthz", server)
            result["remote_logging"] = bench_remote_logging(url, token, args.points)
            bench_resolve(url, token, 20)  # warm both sides alike: connections, caches
            import psutil

            # the server's own CPU per resolve does not move with the machine's load, unlike latency
            before = psutil.Process(server.pid).cpu_times()
            result["resolve"] = bench_resolve(url, token, args.requests)
            after = psutil.Process(server.pid).cpu_times()
            used = (after.user + after.system) - (before.user + before.system)
            result["resolve"]["server_cpu_ms_per_request"] = round(used / result["resolve"]["requests"] * 1e3, 3)
            result["resolve"]["client"] = f"httpx, {CONCURRENCY} threads in the benchmark's process"
            # the same requests from a lean asyncio client in a process of its own: the threaded httpx
            # client's own CPU and GIL waits are not in these figures, only the server's and the OS's
            lean = measured_load(server.pid, port, "/api/v1/resolve?uri=fraud%40champion", args.seconds, Path(tmp),
                                 {"Authorization": f"Bearer {token}"})
            result["resolve_own_process_client"] = {**lean, "client": "asyncio sockets, one process of its own"}
            # the control: the same client against /healthz, which does no work; its tail is the machine's
            # scheduling (a loaded machine parks the server for whole time slices), not the resolve
            idle = measured_load(server.pid, port, "/healthz", args.seconds, Path(tmp))
            result["healthz_own_process_client"] = {k: idle[k] for k in (
                "rps", "p50_ms", "p99_ms", "errors", "server_cpu_ms_per_request", "client_cpu_ms_per_request")}
        finally:
            server.terminate()
            server.wait(timeout=30)
        ws.close()
        python, why = peer_python("mlflow")
        if python is None:
            result["mlflow"] = {"skipped": why}
        else:
            peer_root = Path(tmp) / "mlflow"
            peer_root.mkdir()
            result["mlflow"] = bench_mlflow(python, peer_root, args.points, args.requests)
    peer = result["mlflow"]
    ours = result["remote_logging"], result["resolve"]
    result["comparisons"] = [
        comparison("remote metric logging, one client (points/s)", ours[0]["points_per_s"],
                   peer.get("log_batch_points_per_s"), "points/s", "MLflow server log_batch", lower_is_better=False),
        comparison(f"registry resolve p99, concurrency {CONCURRENCY}", ours[1]["p99_ms"], peer.get("resolve_p99_ms"),
                   "ms", "MLflow get-by-alias"),
    ]
    result["floors"] = {
        "token_check_under_20us": result["token_check_and_rate_limit"]["median_us"] < 20,
        "remote_logging_50k_points_per_s": ours[0]["points_per_s"] >= 50_000,
        "resolve_p99_under_5ms": result["resolve_own_process_client"]["p99_ms"] < 5,
        "resolve_p99_under_5ms_threaded_httpx_client": ours[1]["p99_ms"] < 5,
    }
    finish("server", result)


if __name__ == "__main__":
    main()
