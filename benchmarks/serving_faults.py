"""Serving under failure and load: the online store killed under load, and a step of load with autoscaling.

Prints one JSON line. Two workloads, each run with the resilience features and without them:

- **store killed**: `forgeml serve` answers entity requests (5 features looked up in a real
  redis-server) at concurrency 8; the redis-server is killed with SIGKILL, then restarted with its
  append-only file. Measured: the share of requests answered (HTTP 200), p99, and how long after the
  store answers PING again the answers come from it: until 99% of them do, and strictly, until the
  last answer that used defaults (with the reasons, from /metrics, for those after the return). The endpoint with resilience has
  training_defaults, a 20 ms lookup deadline and a store breaker; the one without has none.
- **load step**: a steady load (concurrency 2) steps to 4x (concurrency 8); p99 after the first 10 s
  of the step is compared with the steady p99, with `--workers auto` (1 to the core count, at most 4) and with 1 worker.

Run: python benchmarks/serving_faults.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import finish

HERE = Path(__file__).resolve().parent
N_FEATURES = 5
N_USERS = 1000
_LENGTH = re.compile(rb"(?i)content-length: *(\d+)")


def _redis_process() -> Any:
    spec = importlib.util.spec_from_file_location("redis_process", HERE.parent / "tests/services/redis_process.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ load generator (own process)
async def _client(port: int, path: bytes, bodies: list[bytes], stop_at: float, records: list[tuple], k: int) -> None:
    head_tpl = b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
    i = k * 97
    reader = writer = None
    while time.time() < stop_at:
        started = time.time()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            body = bodies[i % len(bodies)]
            i += 1
            writer.write(head_tpl + str(len(body)).encode() + b"\r\n\r\n" + body)
            head = await reader.readuntil(b"\r\n\r\n")
            m = _LENGTH.search(head)
            data = await reader.readexactly(int(m.group(1))) if m else b""
            status = int(head[9:12])
            records.append((started, time.time() - started, status, b'"feature_defaults"' in data))
        except (OSError, asyncio.IncompleteReadError) as e:  # a connection lost counts as an unanswered request
            records.append((started, time.time() - started, 0, False))
            if writer is not None:
                writer.close()
            reader = writer = None
            if isinstance(e, ConnectionRefusedError):
                await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


def loadgen_main(spec_path: str) -> None:
    """Entry of the load-generator process: clients start at their times; records go to a JSON file."""
    spec = json.loads(Path(spec_path).read_text())
    bodies = [b.encode() for b in spec["bodies"]]
    records: list[tuple] = []

    async def run() -> None:
        tasks = []
        for start_at, count in spec["phases"]:  # [[wall time, clients to add], ...]
            await asyncio.sleep(max(0.0, start_at - time.time()))
            tasks += [asyncio.create_task(_client(spec["port"], spec["path"].encode(), bodies, spec["stop_at"],
                                                  records, len(tasks) + j)) for j in range(count)]
        await asyncio.gather(*tasks)

    asyncio.run(run())
    Path(spec["out"]).write_text(json.dumps(records))


def start_load(port: int, path: str, bodies: list[str], phases: list[list[float]], stop_at: float,
               tmp: Path) -> tuple[subprocess.Popen, Path]:
    """Start the load generator; return the process and where its records will be."""
    out = tmp / f"records-{port}-{time.time():.0f}.json"
    spec = tmp / f"spec-{port}.json"
    spec.write_text(json.dumps({"port": port, "path": path, "bodies": bodies, "phases": phases,
                                "stop_at": stop_at, "out": str(out)}))
    return subprocess.Popen([sys.executable, __file__, "--loadgen", str(spec)]), out


def pct(values: list[float], q: float) -> float | None:
    """The q-quantile in ms, rounded (None for no values)."""
    ranked = sorted(values)
    return round(ranked[min(len(ranked) - 1, int(q * len(ranked)))] * 1000, 2) if ranked else None


# ------------------------------------------------------------------ workspace and server
def build_workspace(root: Path, redis_url: str) -> list[str]:
    """Users' features in redis, a scikit-learn model over them, and two endpoints: guarded and plain."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, PushSource
    from forgeml.registry import promote, register_model
    from forgeml.workspace import Workspace, set_current

    root.mkdir(parents=True)
    (root / "plugins.toml").write_text(f'[storage.online]\nplugin = "redis"\nurl = "{redis_url}"\n')
    ws = Workspace.init(root)
    set_current(ws)
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(N_FEATURES)]
    x = pd.DataFrame(rng.normal(size=(5_000, N_FEATURES)), columns=names)
    clf = LogisticRegression(max_iter=500).fit(x, (x.f0 + x.f1 > 0).astype(int))
    user = Entity("user", join_keys=["user_id"])
    view = FeatureView("user_features", entities=[user], source=PushSource("user_features_push"),
                       features=[Feature(n, "float64") for n in names])
    store = FeatureStore(ws)
    store.apply([user, view])
    feats = pd.DataFrame(rng.normal(size=(N_USERS, N_FEATURES)), columns=names)
    feats.insert(0, "user_id", np.arange(N_USERS, dtype=np.int64))
    feats.insert(1, "event_timestamp", pd.Timestamp.now(tz="UTC"))
    store.push("user_features", feats)
    mv = register_model("clf", clf, input_example=x.head(5), training_data=x,
                        feature_views=[f"user_features:{n}" for n in names], entity_keys=["user_id"])
    promote("clf", mv.version, "production", reason="benchmark")
    with open(root / "plugins.toml", "a") as f:
        f.write('\n[serving]\nlog_predictions = false\n'
                '[serving.endpoints.guarded]\nmodel = "clf@production"\n'
                '[serving.endpoints.guarded.fallback]\ntraining_defaults = true\nlookup_deadline_ms = 20\n'
                'breaker_failures = 3\nbreaker_cooldown_s = 1.0\n'
                '[serving.endpoints.plain]\nmodel = "clf@production"\n')
    ws.close()
    return [json.dumps({"entities": [{"user_id": int(u)}]}) for u in rng.integers(0, N_USERS, 500)]


def serve(root: Path, extra: list[str]) -> tuple[subprocess.Popen, int]:
    """Start `forgeml serve` (the endpoints of plugins.toml) and wait until it is ready."""
    import httpx

    redis_process = _redis_process()
    port = redis_process.free_port()
    env = {**os.environ, "FORGEML_HOME": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "forgeml", "serve", "--port", str(port), *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"forgeml serve exited with {proc.returncode}")
        time.sleep(0.2)
    raise RuntimeError("forgeml serve was not ready in 120 s")


def stop(proc: subprocess.Popen) -> None:
    """Stop a server's process group."""
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ------------------------------------------------------------------ workloads
def store_killed(port: int, endpoint: str, bodies: list[str], redis: Any, tmp: Path, before: float,
                 down: float, after: float) -> dict[str, Any]:
    """Load at concurrency 8; kill the store after ``before`` s, restart it ``down`` s later."""
    t0 = time.time() + 1.0
    load, out = start_load(port, f"/v1/models/{endpoint}/predict", bodies, [[t0, 8]], t0 + before + down + after, tmp)
    time.sleep(max(0.0, t0 + before - time.time()))
    killed = time.time()
    redis.kill()
    time.sleep(down)
    redis.start()  # returns once it answers PING
    back = time.time()
    reasons_at_back = default_reasons(port, endpoint)
    load.wait(timeout=before + down + after + 120)
    reasons_after = {k: v - reasons_at_back.get(k, 0.0) for k, v in default_reasons(port, endpoint).items()}
    records = json.loads(out.read_text())
    ok = [r for r in records if r[2] == 200]
    outage = [r for r in records if killed <= r[0] < back]
    after_back = sorted(r for r in records if r[0] >= back)
    from_store_after = [r[0] for r in after_back if r[2] == 200 and not r[3]]
    return {
        "requests": len(records), "answered_pct": round(100 * len(ok) / max(len(records), 1), 3),
        "statuses": sorted({r[2] for r in records}),
        "p99_ms": pct([r[1] for r in ok], 0.99), "p99_during_outage_ms": pct([r[1] for r in outage if r[2] == 200],
                                                                             0.99),
        "outage_requests": len(outage), "outage_answered_pct": round(100 * sum(r[2] == 200 for r in outage)
                                                                    / max(len(outage), 1), 3),
        "outage_from_defaults_pct": round(100 * sum(r[3] for r in outage) / max(len(outage), 1), 3),
        "first_store_answer_after_return_s": round(min(from_store_after) - back, 3) if from_store_after else None,
        "back_to_primary_s": back_to_primary(after_back, back),
        # strict: from the store's return to the last answer that still used defaults (0 when none did)
        "back_to_primary_strict_s": round(max((r[0] + r[1] for r in after_back if r[3]), default=back) - back, 3),
        "defaults_after_return_by_reason": {k: int(v) for k, v in sorted(reasons_after.items()) if v},
        "defaulted_after_back_to_primary": sum(1 for r in after_back if r[3] and r[0] >= back
                                               + (back_to_primary(after_back, back) or 0)),
    }


def default_reasons(port: int, endpoint: str) -> dict[str, float]:
    """The endpoint's lookups answered with defaults so far, by reason, from the server's /metrics."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("forgeml_serving_feature_defaults_total{") and f'model="{endpoint}"' in line:
            reason = re.search(r'reason="([^"]*)"', line)
            if reason:
                found[reason.group(1)] = found.get(reason.group(1), 0.0) + float(line.rsplit(" ", 1)[1])
    return found


def back_to_primary(after_back: list[Any], back: float, share: float = 0.99) -> float | None:
    """Seconds from the store's return to the first request from which on >= 99% of answers came from the store.

    A lookup that misses its 20 ms deadline on a busy machine still answers from defaults now and
    then; those stragglers are counted apart rather than read as the store still being down.
    """
    good = [r[2] == 200 and not r[3] for r in after_back]
    suffix = 0
    found = None
    for i in range(len(good) - 1, -1, -1):
        suffix += good[i]
        if suffix >= share * (len(good) - i):
            found = i
    return round(after_back[found][0] - back, 3) if found is not None else None


def load_step(port: int, bodies: list[str], tmp: Path, steady_s: float, step_s: float) -> dict[str, Any]:
    """Concurrency 2 for steady_s, then 8 for step_s; p99 steady and after the step's first 10 s."""
    t0 = time.time() + 1.0
    step_at = t0 + steady_s
    load, out = start_load(port, "/v1/models/plain/predict", bodies, [[t0, 2], [step_at, 6]], step_at + step_s,
                           tmp)
    load.wait(timeout=steady_s + step_s + 120)
    records = json.loads(out.read_text())
    steady = [r[1] for r in records if t0 + 2 <= r[0] < step_at and r[2] == 200]  # 2 s to warm up
    late = [r[1] for r in records if r[0] >= step_at + 10 and r[2] == 200]
    p_steady, p_late = pct(steady, 0.99), pct(late, 0.99)
    return {"steady_p99_ms": p_steady, "step_p99_after_10s_ms": p_late,
            "ratio": round(p_late / p_steady, 2) if p_steady and p_late else None,
            "answered_pct": round(100 * sum(r[2] == 200 for r in records) / max(len(records), 1), 3),
            "rps_steady": round(len(steady) / max(steady_s - 2, 1), 1),
            "rps_after_10s": round(len(late) / max(step_s - 10, 1), 1)}


def main() -> None:
    """Run both workloads with and without the resilience features; print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Shorter phases.")
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        loadgen_main(args.loadgen)
        return
    redis_process = _redis_process()
    result: dict[str, Any] = {"benchmark": "serving_faults", "cpus": os.cpu_count(),
                              "load_avg_1m_at_start": round(os.getloadavg()[0], 2)}
    if not redis_process.RedisProcess.available():
        result["skipped"] = "redis-server is not installed (apt-get install redis-server)"
        finish("serving_faults", result)
        return
    before, down, after = (3.0, 3.0, 6.0) if args.quick else (5.0, 5.0, 10.0)
    steady_s, step_s = (8.0, 20.0) if args.quick else (15.0, 30.0)
    tmp = Path(tempfile.mkdtemp(prefix="forgeml-bench-faults-"))
    redis = redis_process.RedisProcess(tmp / "redis")
    redis.start()
    try:
        bodies = build_workspace(tmp / "ws", redis.url)
        proc, port = serve(tmp / "ws", [])
        try:
            guarded = store_killed(port, "guarded", bodies, redis, tmp, before, down, after)
            plain = store_killed(port, "plain", bodies, redis, tmp, before, down, after)
        finally:
            stop(proc)
        result["store_killed_c8"] = {"with_resilience": guarded, "without_resilience": plain,
                                     "phases_s": {"before": before, "down": down, "after": after}}
        result["floors_store_killed"] = {
            "answered_99_9_pct": guarded["answered_pct"] >= 99.9,
            "p99_under_50ms": guarded["p99_ms"] is not None and guarded["p99_ms"] < 50,
            "back_to_primary_within_5s": (guarded["back_to_primary_s"] is not None
                                          and guarded["back_to_primary_s"] <= 5.0),
            "back_to_primary_within_5s_strict": guarded["back_to_primary_strict_s"] <= 5.0}
        steps: dict[str, Any] = {}
        max_workers = max(2, min(4, os.cpu_count() or 1))
        for label, extra in (("workers_auto", ["--workers", "auto"]), ("one_worker", ["--workers", "1"])):
            ws_toml = tmp / "ws" / "plugins.toml"
            text = ws_toml.read_text().split("\n[serving.autoscale]")[0]
            # more workers than cores cannot help a CPU-bound model: the ceiling is the core count (at most 4)
            ws_toml.write_text(text + f"\n[serving.autoscale]\nmin_workers = 1\nmax_workers = {max_workers}\n"
                                      "target_in_flight = 2\nup_cooldown_s = 2\ndown_cooldown_s = 60\n")
            proc, port = serve(tmp / "ws", extra)
            try:
                steps[label] = load_step(port, bodies, tmp, steady_s, step_s)
            finally:
                stop(proc)
        result["load_step_1x_to_4x"] = {**steps, "max_workers": max_workers}
        ratio = steps["workers_auto"]["ratio"]
        result["floors_autoscale"] = {"p99_after_10s_under_2x_steady": ratio is not None and ratio < 2.0}
        result["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
        finish("serving_faults", result)
    finally:
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
