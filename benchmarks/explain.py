"""Explanation benchmark: served explanations and batch explanation of a 20-feature tree model; one JSON line.

- served: one-row requests, one at a time, to `forgeml serve`, alternating plain and
  ``"explain": true`` so both see the same moments of the machine; the floor is on the p99 added;
- endpoint_in_process: the same alternation straight into the endpoint (no HTTP, no second process),
  which separates the explanation's own cost from a busy machine's scheduling of two processes;
- batch: `forgeml explain`'s service over 10,000 rows, with shap's TreeExplainer alone on the same
  rows beside it (the library's own cost, so the platform's overhead shows);
- peer: MLflow's shap integration (``mlflow.shap``) when mlflow is installed, else skipped.

Run: python benchmarks/explain.py [--seconds 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import serving as serving_bench  # noqa: E402  (the server helpers)
from common import finish, peer_python  # noqa: E402

N_FEATURES = 20
BATCH_ROWS = 10_000
FLOORS = {"served_added_p99_ms": 5.0, "batch_10k_s": 10.0}


def build(root: Path) -> Any:
    """Make the workspace and register a 100-tree gradient-boosting classifier on 20 features."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import GradientBoostingClassifier

    from forgeml.registry import promote, register_model
    from forgeml.workspace import Workspace

    ws = Workspace.init(root)
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(BATCH_ROWS, N_FEATURES)), columns=[f"f{i}" for i in range(N_FEATURES)])
    y = (x.f0 + 0.5 * x.f1 - 0.3 * x.f2 + rng.normal(scale=0.5, size=len(x)) > 0).astype(int)
    model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(x.head(5000), y.head(5000))
    mv = register_model("trees", model, input_example=x.head(200), workspace=ws)
    promote("trees", mv.version, "production", workspace=ws)
    x.to_parquet(root / "rows.parquet")
    ws.close()
    return model, x


def served(root: Path, x: Any, seconds: float, rounds: int) -> dict[str, Any]:
    """p50/p99 of one-row predict with and without explanations, alternating request by request."""
    import http.client

    import numpy as np

    rows = x.head(500).to_dict(orient="records")
    server = serving_bench.forgeml_server(root, ["trees@production"])
    timings: dict[bool, list[float]] = {False: [], True: []}
    errors = 0
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        path = "/v1/models/trees/predict"
        headers = {"Content-Type": "application/json"}

        def call(i: int, explain: bool) -> float:
            nonlocal errors
            body = {"rows": [rows[i % len(rows)]]}
            if explain:
                body.update(explain=True, top_k=3)
            data = json.dumps(body)
            started = time.perf_counter()
            conn.request("POST", path, data, headers)
            response = conn.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200 or (explain and b"explanations" not in payload):
                errors += 1
            return elapsed

        for i in range(200):  # warm up both paths (the explainer is built on first use)
            call(i, i % 2 == 0)
        for _ in range(rounds):
            stop = time.perf_counter() + seconds
            i = 0
            while time.perf_counter() < stop:
                # alternate, so both paths see the same moments of a shared machine
                timings[i % 2 == 1].append(call(i, i % 2 == 1))
                i += 1
        conn.close()
    finally:
        server.stop()

    def pct(explain: bool, q: float) -> float:
        return round(float(np.percentile(timings[explain], q)) * 1000, 3)

    return {"plain_p50_ms": pct(False, 50), "plain_p99_ms": pct(False, 99), "explain_p50_ms": pct(True, 50),
            "explain_p99_ms": pct(True, 99), "added_p50_ms": round(pct(True, 50) - pct(False, 50), 3),
            "added_p99_ms": round(pct(True, 99) - pct(False, 99), 3),
            "requests": len(timings[False]) + len(timings[True]), "errors": errors}


def in_process(root: Path, x: Any, requests: int = 2000) -> dict[str, Any]:
    """The endpoint's own time for one row, plain and explained, without HTTP or a second process."""
    import asyncio

    import numpy as np

    from forgeml.serving import EndpointConfig, ServerOptions
    from forgeml.serving.app import ServingState
    from forgeml.workspace import Workspace

    rows = x.head(500).to_dict(orient="records")

    async def run() -> dict[bool, list[float]]:
        state = ServingState([EndpointConfig("trees", "trees@production")], ServerOptions(load_before_serving=True),
                             Workspace(root))
        await state.start()
        endpoint = state.endpoints["trees"]
        timings: dict[bool, list[float]] = {False: [], True: []}
        for i in range(requests + 200):
            explain = i % 2 == 1
            body: dict[str, Any] = {"rows": [rows[i % len(rows)]]}
            if explain:
                body.update(explain=True, top_k=3)
            started = time.perf_counter()
            await endpoint.predict(body)
            if i >= 200:
                timings[explain].append(time.perf_counter() - started)
        await state.stop()
        return timings

    timings = asyncio.run(run())

    def pct(explain: bool, q: float) -> float:
        return round(float(np.percentile(timings[explain], q)) * 1000, 3)

    return {"plain_p50_ms": pct(False, 50), "plain_p99_ms": pct(False, 99), "explain_p50_ms": pct(True, 50),
            "explain_p99_ms": pct(True, 99), "added_p50_ms": round(pct(True, 50) - pct(False, 50), 3),
            "added_p99_ms": round(pct(True, 99) - pct(False, 99), 3)}


def batch(root: Path, model: Any, x: Any) -> dict[str, Any]:
    """Seconds to explain 10,000 rows through the platform, and with shap alone."""
    import shap

    from forgeml.serving.explain_batch import explain_batch
    from forgeml.workspace import Workspace

    ws = Workspace(root)
    started = time.perf_counter()
    result = explain_batch("trees@production", str(root / "rows.parquet"), str(root / "why.parquet"), top_k=3,
                           workspace=ws)
    platform_s = time.perf_counter() - started
    started = time.perf_counter()
    shap.TreeExplainer(model, feature_perturbation="tree_path_dependent").shap_values(x.to_numpy())
    raw_s = time.perf_counter() - started
    ws.close()
    return {"rows": result.rows, "method": result.method, "forgeml_s": round(platform_s, 3),
            "shap_alone_s": round(raw_s, 3)}


def peer(model: Any, x: Any) -> dict[str, Any]:
    """MLflow's shap integration on 100 rows, when mlflow is installed beside forgeml; else why not."""
    python, why = peer_python("mlflow")
    if python != sys.executable:
        return {"skipped": why if python is None else "mlflow.shap needs the model in-process; " + why}
    import mlflow
    import mlflow.shap

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(f"file://{tmp}")
        with mlflow.start_run():
            mlflow.shap.log_explanation(lambda a: model.predict_proba(a)[:, 1], x.head(100))
    return {"mlflow_shap_100_rows_s": round(time.perf_counter() - started, 3)}


def main() -> None:
    """Run the workloads and print one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="forgeml-explain-bench-") as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "ws"
        os.environ["FORGEML_HOME"] = str(root)
        model, x = build(root)
        out: dict[str, Any] = {"features": N_FEATURES, "model": "GradientBoosting 100x3"}
        out["served"] = served(root, x, args.seconds, args.rounds)
        out["endpoint_in_process"] = in_process(root, x)
        out["batch"] = batch(root, model, x)
        out["peer"] = peer(model, x)
        out["floors"] = {
            "served_added_p99_ms": {"floor": FLOORS["served_added_p99_ms"], "measured": out["served"]["added_p99_ms"],
                                    "met": out["served"]["added_p99_ms"] < FLOORS["served_added_p99_ms"]},
            "batch_10k_s": {"floor": FLOORS["batch_10k_s"], "measured": out["batch"]["forgeml_s"],
                            "met": out["batch"]["forgeml_s"] < FLOORS["batch_10k_s"]},
        }
    finish("explain", out)


if __name__ == "__main__":
    main()
