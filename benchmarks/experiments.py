"""Online experiments: what arm assignment and propensity logging add per request, and replay speed.

1. Per request, serving with an experiment does two things more than without: the allocator picks an
   arm (two keyed hashes and a bisect) and the prediction log takes two more columns (_experiment,
   _propensity). Both are timed here on the real code over many routing keys; the floor is that
   together they add under 50 µs per request. The A/B split's own hash is timed beside them.
2. Replay: N logged single-row requests (default 1,000,000) are written through the real prediction
   logger into a fresh workspace, then replayed through a registered scikit-learn model; the floor
   is under 60 s for 1M on a 2-core machine. The candidate is production's own version, so every
   prediction must match.

Peers: BentoML and KServe ship no replay of recorded traffic, so there is no side to run.

Usage: python benchmarks/experiments.py [--rows 1000000] [--keys 200000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import finish

FEATURES = [f"f{i}" for i in range(8)]


def _per_call_us(fn, keys: list[str], rounds: int = 5) -> float:
    """Median over rounds of the mean time per call, in microseconds."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for k in keys:
            fn(k)
        times.append((time.perf_counter() - started) / len(keys) * 1e6)
    return statistics.median(times)


def assignment(keys: int) -> dict:
    """Time the allocator, the A/B hash, and the prediction log with and without the experiment columns."""
    from forgeml.serving.arms import Allocator, ArmsConfig
    from forgeml.serving.fallback import mark_defaults
    from forgeml.serving.predlog import PredictionLogger
    from forgeml.serving.traffic import TrafficPolicy

    names = [f"user-{i}" for i in range(keys)]
    alloc = Allocator("bench", ArmsConfig(["control", "b", "c"], holdout=0.05), [0.5, 0.3, 0.2])
    ab = TrafficPolicy("fraud", 0.5, True)
    assign_us = _per_call_us(alloc.assign, names)
    ab_us = _per_call_us(ab.choose, names)
    inputs = {f: [0.5] for f in FEATURES}
    now = dt.datetime.now(dt.UTC)

    with tempfile.TemporaryDirectory() as tmp:
        logger = PredictionLogger(Path(tmp), max_pending_rows=10**9)  # not started: only the request-path append

        def plain(key: str) -> None:
            logger.log("fraud", 1, "primary", key, now, 1.0, mark_defaults(inputs, [], 1), [0.5], 1)

        def tagged(key: str) -> None:
            arm, p = alloc.assign(key)
            logger.log("fraud", 1, arm, key, now, 1.0,
                       mark_defaults(inputs, [], 1, {"_experiment": "bench", "_propensity": p}), [0.5], 1)

        plain_us = _per_call_us(plain, names, rounds=3)
        tagged_us = _per_call_us(tagged, names, rounds=3)
    added = tagged_us - plain_us
    return {"keys": keys, "assign_us": round(assign_us, 3), "ab_choose_us": round(ab_us, 3),
            "log_plain_us": round(plain_us, 3), "log_with_experiment_us": round(tagged_us, 3),
            "added_per_request_us": round(added, 3), "floor_50us": added < 50}


def replay_bench(rows: int) -> dict:
    """Log `rows` single-row requests answered by a scikit-learn model, then replay them through it."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from forgeml.experiments.replay import logged_values, replay
    from forgeml.registry import register_model
    from forgeml.serving.predlog import PredictionLogger, log_root
    from forgeml.serving.slot import model_output
    from forgeml.serving.source import RegistrySource
    from forgeml.workspace import Workspace

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.init(Path(tmp) / "ws")
        x = pd.DataFrame(rng.normal(size=(2000, len(FEATURES))), columns=FEATURES)
        y = (x.f0 + 0.5 * x.f1 - x.f2 > 0).astype(int)
        register_model("bench", LogisticRegression().fit(x, y), input_example=x.head(3), workspace=ws)
        served = RegistrySource(ws).load("bench@1")
        data = rng.normal(size=(rows, len(FEATURES)))
        production = logged_values(model_output(served, pd.DataFrame(data, columns=FEATURES)))
        started = time.perf_counter()
        logger = PredictionLogger(log_root(ws), max_pending_rows=10**9)
        t0 = dt.datetime.now(dt.UTC)
        columns = data.tolist()
        for i in range(rows):
            logger.log("bench", 1, "primary", f"r{i}", t0, 1.0, dict(zip(FEATURES, ([v] for v in columns[i]),
                                                                          strict=True)),
                       [production[i]], 1)
        logger.close()
        log_s = time.perf_counter() - started
        report = replay("bench@1", "bench", workspace=ws)
        ws.close()
    return {"rows": rows, "write_log_s": round(log_s, 2), "replay_s": report.seconds,
            "replay_rows_per_s": round(rows / report.seconds), "exact_match": report.exact_match,
            "floor_60s_per_1m": report.seconds * 1_000_000 / rows < 60}


def main() -> None:
    """Run both parts and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=200_000)
    args = parser.parse_args()
    finish("experiments", {
        "assignment": assignment(args.keys),
        "replay": replay_bench(args.rows),
        "peers": {"bentoml": "skipped: BentoML ships no replay of recorded traffic",
                  "kserve": "skipped: KServe ships no replay of recorded traffic"},
    })


if __name__ == "__main__":
    main()
