"""Quickstart benchmark: the whole lifecycle at one scale in a temporary folder, timed per step.

The floor is under 3 minutes at the default scale on 2 CPU cores. Usage:
``python benchmarks/quickstart.py [default|small|tiny]``. Prints one JSON line.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from common import finish


def main(scale: str = "default") -> None:
    """Run the quickstart and print its timings and key numbers."""
    from forgeml.quickstart import run_quickstart

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        summary = run_quickstart(Path(tmp) / "qs", scale)
        wall = time.perf_counter() - started
    finish("quickstart", {
        "benchmark": "quickstart", "scale": scale, "cpus": os.cpu_count(), "wall_s": round(wall, 2),
        "under_3_minutes": wall < 180, "steps_s": {s.name: s.seconds for s in summary.steps},
        "transactions": summary.transactions, "training_rows": summary.training_rows,
        "pit_join_s": round(summary.pit_join_s, 3), "roc_auc": summary.roc_auc, "requests": summary.requests,
        "p99_ms": round(summary.p99_ms, 2), "drift_share": summary.drift_share,
        "retrained_promoted": summary.retrained_promoted,
    })


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "default")
