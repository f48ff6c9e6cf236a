"""Quickstart benchmark: the whole lifecycle in a temporary folder, timed per step, at `--small` and at
the default scale in the same run, so the two can be compared on the same machine and load.

The floor is under 3 minutes at the default scale on 2 CPU cores, and `--small` quicker than the
default. Usage: ``python benchmarks/quickstart.py [both|default|small|tiny]``. Prints one JSON line.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from common import finish


def run(scale: str) -> dict:
    """Run the quickstart at one scale and return its timings and key numbers."""
    from forgeml.quickstart import run_quickstart

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        summary = run_quickstart(Path(tmp) / "qs", scale)
        wall = time.perf_counter() - started
    return {
        "scale": scale, "wall_s": round(wall, 2), "steps_s": {s.name: s.seconds for s in summary.steps},
        "transactions": summary.transactions, "training_rows": summary.training_rows,
        "trials": summary.trials_complete + summary.trials_pruned + summary.trials_failed,
        "pit_join_s": round(summary.pit_join_s, 3), "roc_auc": summary.roc_auc, "evaluated_on": summary.evaluated_on,
        "requests": summary.requests, "p99_ms": round(summary.p99_ms, 2), "drift_share": summary.drift_share,
        "retrained_promoted": summary.retrained_promoted,
    }


def main(which: str = "both") -> None:
    """Run the chosen scales (small then default for "both") and print one JSON line."""
    scales = ["small", "default"] if which == "both" else [which]
    runs = {scale: run(scale) for scale in scales}
    result: dict = {"cpus": os.cpu_count(), "runs": runs}
    if "default" in runs:
        result["under_3_minutes"] = runs["default"]["wall_s"] < 180
    if "small" in runs and "default" in runs:
        result["small_x_quicker"] = round(runs["default"]["wall_s"] / runs["small"]["wall_s"], 2)
        result["small_is_quicker"] = runs["small"]["wall_s"] < runs["default"]["wall_s"]
    finish("quickstart", result)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "both")
