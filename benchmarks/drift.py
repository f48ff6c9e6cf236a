"""Drift report on 200,000 reference + 200,000 current rows x 20 numeric + 5 categorical columns.

Shifts (as in the Evidently comparison): num_00 mean +0.25 sd, num_01 scale x1.3, num_02 mean
+0.03 sd (subtle), cat_00 changed category probabilities, cat_01 a new category at 3%. Prints one
JSON line with forgeml's time and flagged columns, and Evidently's DataDriftPreset side by side
when evidently is importable (or, since evidently pins an older pandas, when
FORGEML_BENCH_EVIDENTLY_PYTHON names an interpreter that has it: that side then runs in a subprocess
on the same generated data). Both sides get the same treatment: the first call in a fresh process
(cold) and the call after it (warm), each timed once.

Usage: python benchmarks/drift.py [--rows 200000]
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd

ROWS = 200_000
NUMERIC = 20
CATEGORICAL = 5
SHIFTED = ["num_00", "num_01", "num_02", "cat_00", "cat_01"]
CATEGORIES = np.array(["a", "b", "c", "d", "e"])
PROBS = np.array([0.3, 0.25, 0.2, 0.15, 0.1])


def make_data(rows: int = ROWS, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the reference and current frames deterministically, with the five known shifts."""
    rng = np.random.default_rng(seed)
    frames = []
    for side in ("reference", "current"):
        cols: dict[str, np.ndarray] = {}
        for i in range(NUMERIC):
            cols[f"num_{i:02d}"] = rng.normal(10.0 + i, 1.0 + 0.1 * i, rows)
        for i in range(CATEGORICAL):
            cols[f"cat_{i:02d}"] = CATEGORIES[rng.choice(5, rows, p=PROBS)]
        if side == "current":
            sd = lambda i: 1.0 + 0.1 * i  # noqa: E731 - the generating std of num_i
            cols["num_00"] = cols["num_00"] + 0.25 * sd(0)
            cols["num_01"] = 11.0 + (cols["num_01"] - 11.0) * 1.3
            cols["num_02"] = cols["num_02"] + 0.03 * sd(2)
            cols["cat_00"] = CATEGORIES[rng.choice(5, rows, p=[0.25, 0.25, 0.2, 0.15, 0.15])]
            new = rng.random(rows) < 0.03
            cat = cols["cat_01"].astype(object)
            cat[new] = "z"
            cols["cat_01"] = cat.astype(str)
        frames.append(pd.DataFrame(cols))
    return frames[0], frames[1]


def run_forgeml(reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    """Time forgeml's drift report (Arrow conversion included): the first call (cold), then the next (warm)."""
    import pyarrow as pa

    from forgeml.monitoring import drift_report

    def once() -> tuple[float, object]:
        started = time.perf_counter()
        report = drift_report(pa.Table.from_pandas(reference, preserve_index=False),
                              pa.Table.from_pandas(current, preserve_index=False))
        return time.perf_counter() - started, report

    first, report = once()
    warm = once()[0]
    return {"cold_s": round(first, 3), "warm_s": round(warm, 3),
            "flagged": sorted(report.drifted_columns),
            "severity": {c.column: c.severity for c in report.columns if c.drifted},
            "false_positives": sorted(set(report.drifted_columns) - set(SHIFTED))}


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame) -> dict | None:
    """Time Evidently's DataDriftPreset on the same frames, or return None when it is not importable."""
    try:
        from evidently import Report
        from evidently.presets import DataDriftPreset
    except ImportError:
        return None
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(reference_data=reference, current_data=current)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(reference_data=reference, current_data=current)
    warm = time.perf_counter() - started
    flagged, methods = [], set()
    for metric in snapshot.dict().get("metrics", []):
        config, value = metric.get("config", {}), metric.get("value")
        if "ValueDrift" not in str(metric.get("metric_name")) or not isinstance(value, int | float):
            continue
        method = str(config.get("method", ""))
        methods.add(method)
        # p-value methods flag below the threshold, distance methods at or above it
        drifted = value < config["threshold"] if "p_value" in method else value >= config["threshold"]
        if drifted:
            flagged.append(config["column"])
    import evidently

    return {"version": evidently.__version__, "cold_s": round(cold, 3), "warm_s": round(warm, 3),
            "flagged": sorted(flagged), "methods": sorted(methods)}


def evidently_elsewhere(rows: int) -> dict:
    """Run the Evidently side with an interpreter that has it, on the same deterministically generated data."""
    from pathlib import Path

    from common import peer_python, run_peer

    python, how = peer_python("evidently")
    if python is None:
        return {"skipped": how}
    return {**run_peer(python, Path(__file__), "--evidently-only", "--rows", str(rows)), "ran_in": how}


def main() -> None:
    """Run the benchmark and print one JSON line."""
    import argparse

    from common import comparison, finish

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--evidently-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    reference, current = make_data(args.rows)
    if args.evidently_only:
        print(json.dumps(run_evidently(reference, current)))
        return
    ours = run_forgeml(reference, current)
    del reference, current  # the peer's process makes its own copy of the data
    theirs = evidently_elsewhere(args.rows)
    out = {
        "rows": [args.rows, args.rows],
        "columns": {"numeric": NUMERIC, "categorical": CATEGORICAL},
        "shifted": SHIFTED,
        "forgeml": ours,
        "forgeml_exact": ours["flagged"] == sorted(SHIFTED),
        "evidently": theirs,
    }
    if "cold_s" in theirs:
        name = f"evidently {theirs['version']} DataDriftPreset"
        out["comparisons"] = [comparison("drift report, 25 columns, cold", ours["cold_s"], theirs["cold_s"], "s", name),
                              comparison("drift report, 25 columns, warm", ours["warm_s"], theirs["warm_s"], "s", name)]
        out["floor_10x"] = theirs["warm_s"] / ours["warm_s"] >= 10 and \
            set(theirs["flagged"]) & set(SHIFTED) <= set(ours["flagged"])
    finish("drift", out)


if __name__ == "__main__":
    main()
