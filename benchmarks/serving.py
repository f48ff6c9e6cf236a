"""Serving benchmark: HTTP throughput and latency on loopback; prints one JSON line.

Workloads (each server runs in its own process, the load generator in another):
- a small scikit-learn model (20 features), single-row requests at concurrency 8, by rows and by
  entity key (the 20 features looked up in the online store per request);
- the same model under ``mlflow models serve`` side by side, when mlflow is installed;
- a small torch MLP at concurrency 64 with dynamic batching on, then off.

Run: python benchmarks/serving.py [--seconds 5] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import comparison, finish, peer_python

N_FEATURES = 20
N_USERS = 10_000
_LENGTH = re.compile(rb"(?i)content-length: *(\d+)")


# ------------------------------------------------------------------ load generator (own process)
async def _worker(port: int, path: bytes, bodies: list[bytes], stop_at: float, record_from: float,
                  latencies: list[float], errors: list[int], offset: int, method: bytes = b"POST",
                  extra: bytes = b"", answered: list[int] | None = None) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    head_tpl = (method + b" " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra
                + b"Content-Type: application/json\r\nContent-Length: ")
    try:
        while True:
            started = time.perf_counter()
            if started >= stop_at:
                return
            body = bodies[i % len(bodies)]
            i += 1
            writer.write(head_tpl + str(len(body)).encode() + b"\r\n\r\n" + body)
            head = await reader.readuntil(b"\r\n\r\n")
            m = _LENGTH.search(head)
            if m is None:
                raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
            await reader.readexactly(int(m.group(1)))
            if answered is not None:
                answered[0] += 1
            if started >= record_from:
                # only a successful answer counts toward throughput and latency; failures are counted apart
                if head[9:12] == b"200":
                    latencies.append(time.perf_counter() - started)
                else:
                    errors.append(int(head[9:12]))
    finally:
        writer.close()


async def _load(port: int, path: str, bodies: list[bytes], concurrency: int, seconds: float,
                warmup: float, method: str = "POST", headers: dict[str, str] | None = None) -> dict[str, Any]:
    now = time.perf_counter()
    record_from = now + warmup
    stop_at = record_from + seconds
    latencies: list[float] = []
    errors: list[int] = []
    answered = [0]  # every answer, warm-up included: what a server's CPU over the whole run is divided by
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()).encode()
    await asyncio.gather(*(_worker(port, path.encode(), bodies, stop_at, record_from, latencies, errors, k * 97,
                                   method.encode(), extra, answered)
                           for k in range(concurrency)))
    latencies.sort()
    n = len(latencies)

    def pct(q: float) -> float:
        return round(latencies[min(n - 1, int(q * n))] * 1000, 2) if n else float("nan")

    return {"successes": n, "errors": len(errors), "codes": sorted(set(errors)), "rps": round(n / seconds, 1),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "concurrency": concurrency,
            "counted": "successful (200) responses only", "answered_in_all": answered[0]}


def loadgen_main(spec_path: str) -> None:
    """Entry of the load-generator process: read a spec file, run, print JSON."""
    spec = json.loads(Path(spec_path).read_text())
    bodies = [b.encode() for b in spec["bodies"]]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    cpu = time.process_time()
    result = asyncio.run(_load(spec["port"], spec["path"], bodies, spec["concurrency"], spec["seconds"],
                               spec["warmup"], spec.get("method", "POST"), spec.get("headers")))
    # the client's own CPU per answer: beside the server's, it shows which side is the bottleneck
    used = time.process_time() - cpu
    result["client_cpu_ms_per_request"] = round(used / max(1, result["answered_in_all"]) * 1e3, 3)
    print(json.dumps(result))


def run_load(port: int, path: str, bodies: list[str], concurrency: int, seconds: float, warmup: float,
             tmp: Path, method: str = "POST", headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the load generator in a separate process and return its measurements (GET: give bodies [""])."""
    spec = tmp / f"load-{port}-{concurrency}.json"
    spec.write_text(json.dumps({"port": port, "path": path, "bodies": bodies, "concurrency": concurrency,
                                "seconds": seconds, "warmup": warmup, "method": method, "headers": headers or {}}))
    out = subprocess.run([sys.executable, __file__, "--loadgen", str(spec)], capture_output=True, text=True,
                         timeout=seconds + warmup + 120)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ servers
def free_port() -> int:
    """Return a TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, path: str, timeout: float = 120.0, proc: Any = None) -> float:
    """Wait until GET path answers 200; return the seconds it took."""
    import httpx

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} not healthy at {path} after {timeout}s")


class Server:
    """A server subprocess, stopped on exit."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, health: str):
        self.port = port
        # a file, not a pipe nobody reads: a chatty server would block once the pipe filled and stall the run
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     start_new_session=True)
        try:
            self.startup_s = round(wait_http(port, health, proc=self.proc), 2)
        except RuntimeError as e:
            self.stop()
            self.stderr.seek(0)
            err = self.stderr.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"{e}; server stderr:\n{err}") from None

    def stop(self) -> None:
        """Stop the server's process group."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def forgeml_server(home: Path, uris: list[str], extra: list[str] | None = None,
                   env_extra: dict[str, str] | None = None) -> Server:
    """Start `forgeml serve` on a free port."""
    port = free_port()
    env = {**os.environ, "FORGEML_HOME": str(home), **(env_extra or {})}
    argv = [sys.executable, "-m", "forgeml", "serve", *uris, "--port", str(port), *(extra or [])]
    return Server(argv, env, port, "/readyz")


# ------------------------------------------------------------------ data and models
def build_workspace(root: Path) -> dict[str, Any]:
    """Make the workspace: the online features, the sklearn model and the torch MLP, deterministically."""
    import numpy as np
    import pandas as pd
    import torch
    from sklearn.linear_model import LogisticRegression

    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, PushSource
    from forgeml.registry import promote, register_model
    from forgeml.workspace import Workspace, set_current

    ws = Workspace.init(root)
    os.environ["FORGEML_HOME"] = str(root)
    set_current(ws)
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(N_FEATURES)]
    x = pd.DataFrame(rng.normal(size=(5_000, N_FEATURES)), columns=names)
    y = (x.f0 + x.f1 - x.f2 > 0).astype(int)
    clf = LogisticRegression(max_iter=500).fit(x, y)

    user = Entity("user", join_keys=["user_id"])
    view = FeatureView("user_features", entities=[user], source=PushSource("user_features_push"),
                       features=[Feature(n, "float64") for n in names])
    store = FeatureStore(ws)
    store.apply([user, view])
    feats = pd.DataFrame(rng.normal(size=(N_USERS, N_FEATURES)), columns=names)
    feats.insert(0, "user_id", np.arange(N_USERS, dtype=np.int64))
    feats.insert(1, "event_timestamp", pd.Timestamp.now(tz="UTC"))
    store.push("user_features", feats)

    mv = register_model("clf", clf, input_example=x.head(5), feature_views=[f"user_features:{n}" for n in names],
                        entity_keys=["user_id"])
    promote("clf", mv.version, "production", reason="benchmark")

    torch.manual_seed(0)
    width = 64
    hidden = 2048
    mlp = torch.nn.Sequential(torch.nn.Linear(width, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                              torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    tx = pd.DataFrame(rng.normal(size=(8, width)).astype("float32"), columns=[f"x{i}" for i in range(width)])
    tv = register_model("mlp", mlp, flavor="torch", input_example=tx)
    promote("mlp", tv.version, "production", reason="benchmark")
    (root / "plugins.toml").write_text((root / "plugins.toml").read_text()
                                       + "\n[serving.endpoints.mlp.batching]\nmax_batch_size = 64\n")
    params = sum(p.numel() for p in mlp.parameters())
    return {"clf": clf, "x": x, "names": names, "mlp_width": width, "rng": rng,
            "mlp": f"{width}-{hidden}-{hidden}-1 ({params / 1e6:.1f}M params, float32)"}


def mlflow_side(data: dict[str, Any], tmp: Path, bodies_rows: list[dict[str, float]], seconds: float,
                warmup: float) -> dict[str, Any]:
    """Serve the same fitted model with `mlflow models serve` and measure it, when mlflow is installed."""
    import joblib

    python, how = peer_python("mlflow")
    if python is None:
        return {"skipped": how}
    model_dir = tmp / "mlflow-model"
    joblib.dump((data["clf"], data["x"].head(2)), tmp / "clf.joblib")
    save = ("import sys, joblib, mlflow.sklearn; m, x = joblib.load(sys.argv[1]); "
            "mlflow.sklearn.save_model(m, sys.argv[2], input_example=x)")
    subprocess.run([python, "-c", save, str(tmp / "clf.joblib"), str(model_dir)], check=True, capture_output=True,
                   timeout=300)
    names = data["names"]
    bodies = [json.dumps({"dataframe_split": {"columns": names, "data": [[r[n] for n in names]]}})
              for r in bodies_rows]
    out: dict[str, Any] = {"version": subprocess.run([python, "-c", "import mlflow; print(mlflow.__version__)"],
                                                     capture_output=True, text=True).stdout.strip()}
    bin_dir = str(Path(python).parent)
    for workers in (1, 2):
        port = free_port()
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"file://{tmp / 'mlruns'}",
               "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
        argv = [python, "-m", "mlflow", "models", "serve", "-m", str(model_dir), "-p", str(port), "-h", "127.0.0.1",
                "--env-manager", "local", "-w", str(workers)]
        server = Server(argv, env, port, "/ping")
        try:
            result = run_load(port, "/invocations", bodies, 8, seconds, warmup, tmp)
            result["startup_s"] = server.startup_s
            out[f"workers_{workers}"] = result
        finally:
            server.stop()
    return out


def main() -> None:
    """Build the workspace, run every workload side by side and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="Measured seconds per workload.")
    parser.add_argument("--quick", action="store_true", help="2 s per workload.")
    parser.add_argument("--torch-threads", type=int, default=1, help="OMP_NUM_THREADS of the torch servers.")
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        loadgen_main(args.loadgen)
        return
    seconds = 2.0 if args.quick else args.seconds
    warmup = 1.0
    tmp = Path(tempfile.mkdtemp(prefix="forgeml-bench-serving-"))
    try:
        data = build_workspace(tmp / "ws")
        rng = data["rng"]
        names = data["names"]
        rows = [{n: round(float(v), 6) for n, v in zip(names, rng.normal(size=N_FEATURES))} for _ in range(500)]
        row_bodies = [json.dumps({"rows": [r]}) for r in rows]
        entity_bodies = [json.dumps({"entities": [{"user_id": int(u)}]}) for u in rng.integers(0, N_USERS, 500)]
        width = data["mlp_width"]
        mlp_bodies = [json.dumps({"rows": [{f"x{i}": round(float(v), 5) for i, v in enumerate(rng.normal(size=width))}]})
                      for _ in range(500)]
        result: dict[str, Any] = {"benchmark": "serving", "cpus": os.cpu_count(), "seconds": seconds,
                                  "load_avg_1m_at_start": round(os.getloadavg()[0], 2)}

        server = forgeml_server(tmp / "ws", ["clf@production"])
        try:
            result["startup_s"] = server.startup_s
            sk_rows = run_load(server.port, "/v1/models/clf/predict", row_bodies, 8, seconds, warmup, tmp)
            sk_entities = run_load(server.port, "/v1/models/clf/predict", entity_bodies, 8, seconds, warmup, tmp)
        finally:
            server.stop()
        server = forgeml_server(tmp / "ws", ["clf@production"], ["--no-batching"])
        try:
            sk_unbatched = run_load(server.port, "/v1/models/clf/predict", row_bodies, 8, seconds, warmup, tmp)
        finally:
            server.stop()
        result["sklearn_rows_c8"] = sk_rows
        result["sklearn_rows_c8_unbatched"] = sk_unbatched
        result["sklearn_entities_c8"] = sk_entities
        result["p99_with_online_lookup_ms"] = sk_entities["p99_ms"]
        result["p99_floor_met"] = sk_entities["p99_ms"] < 15.0

        peer = mlflow_side(data, tmp, rows, seconds, warmup)
        result["mlflow"] = peer
        if "skipped" not in peer:
            best_peer = max(v["rps"] for k, v in peer.items() if k.startswith("workers_"))
            result["throughput_vs_mlflow_1_worker"] = round(sk_rows["rps"] / peer["workers_1"]["rps"], 2)
            result["throughput_vs_mlflow_best"] = round(sk_rows["rps"] / best_peer, 2)
            result["mlflow_floor_met"] = sk_rows["rps"] >= 3 * peer["workers_1"]["rps"]
            name = f"mlflow {peer.get('version', '')} models serve, 1 worker"
            result["comparisons"] = [
                comparison("sklearn rows c8 req/s, batching on", sk_rows["rps"], peer["workers_1"]["rps"], "req/s",
                           name, lower_is_better=False, note="successful responses only, both sides"),
                comparison("sklearn rows c8 req/s, batching off", sk_unbatched["rps"], peer["workers_1"]["rps"],
                           "req/s", name, lower_is_better=False),
                comparison("sklearn rows c8 p99", sk_rows["p99_ms"], peer["workers_1"]["p99_ms"], "ms", name),
            ]

        # one intra-op thread: the load generator needs the other core, and spinning OpenMP
        # workers on a shared 2-core machine cost more than they give (same setting both ways)
        threads = {"OMP_NUM_THREADS": str(args.torch_threads)}
        server = forgeml_server(tmp / "ws", ["mlp@production"], env_extra=threads)
        try:
            batched = run_load(server.port, "/v1/models/mlp/predict", mlp_bodies, 64, seconds, warmup, tmp)
        finally:
            server.stop()
        server = forgeml_server(tmp / "ws", ["mlp@production"], ["--no-batching"], env_extra=threads)
        try:
            unbatched = run_load(server.port, "/v1/models/mlp/predict", mlp_bodies, 64, seconds, warmup, tmp)
        finally:
            server.stop()
        result["torch_mlp"] = data["mlp"]
        result["torch_mlp_c64_batched"] = batched
        result["torch_mlp_c64_unbatched"] = unbatched
        result["batching_speedup"] = round(batched["rps"] / max(unbatched["rps"], 1e-9), 2)
        result["batching_floor_met"] = result["batching_speedup"] >= 4.0
        result["torch_threads"] = args.torch_threads
        result["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
        finish("serving", result)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
