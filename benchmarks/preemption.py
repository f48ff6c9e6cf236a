"""Preemption to resumed training for a 100 MB model: checkpoint saved, job placed again, state loaded.

Prints one JSON line. A real scheduler with one declared GPU runs a training job holding a 100 MB
model (25M float32 parameters); an urgent job preempts it. Measured from the urgent submission until
the preempted job has loaded its checkpoint again in a new process, with the parts: the save on
SIGTERM, the urgent job's own run, process start with torch import, and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from common import finish

CONFIG = """
[scheduler]
poll_interval_s = 0.05
grace_period_s = 30.0

[scheduler.inventory]
plugin = "declared"
count = 1
"""

TRAIN = """
import json, sys, time
t_start = time.time()
import torch
import forgeml
t_import = time.time()
state = forgeml.resume()
t_loaded = time.time()
params = int(sys.argv[1])
if state is None:
    state = {"step": 0, "model": {"w": torch.randn(params)}}
print(json.dumps({"event": "resumed", "step": state["step"], "at": t_loaded, "process_start": t_start,
                  "import_s": t_import - t_start, "load_s": t_loaded - t_import}), flush=True)
step = state["step"]
while True:
    state["model"]["w"].mul_(0.999)
    step += 1
    time.sleep(0.02)
    if forgeml.should_stop():
        t0 = time.time()
        forgeml.checkpoint({"step": step, "model": state["model"]}, step=step)
        print(json.dumps({"event": "saved", "save_s": time.time() - t0, "at": time.time()}), flush=True)
        sys.exit(0)
    if state["step"] > 0 and step > state["step"] + 50:
        print(json.dumps({"event": "done"}), flush=True)
        sys.exit(0)
"""


def events(job_id: str, attempt: int, ws) -> list[dict]:
    """The JSON events an attempt printed so far (none before it starts)."""
    from forgeml.errors import NotFoundError
    from forgeml.jobs import read_logs

    try:
        log = read_logs(job_id, attempt=attempt, workspace=ws)[0]
    except NotFoundError:
        return []
    return [json.loads(line) for line in log.splitlines() if line.startswith('{"event"')]


def main() -> None:
    """Run the preemption and print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="model size in MB")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from forgeml.jobs import JobSpec, Scheduler, submit, wait
    from forgeml.workspace import Workspace, set_current

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        Workspace.init(root).close()
        (root / "plugins.toml").write_text(CONFIG)
        (root / "train.py").write_text(TRAIN)
        os.environ["FORGEML_HOME"] = str(root)
        os.chdir(root)
        ws = Workspace(root)
        set_current(ws)
        params = args.mb * 2**20 // 4
        job = submit(JobSpec(script="train.py", args=[str(params)], gpus=1), ws)
        scheduler = Scheduler(ws).start_in_thread()
        try:
            for attempt in range(1, args.repeats + 1):
                deadline = time.monotonic() + 120
                while not any(e["event"] == "resumed" for e in events(job.id, attempt, ws)):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"attempt {attempt} never started")
                    time.sleep(0.02)
                time.sleep(0.5)
                t0 = time.time()
                urgent = submit(JobSpec(command=[sys.executable, "-c", "pass"], gpus=1, priority=10), ws)
                deadline = time.monotonic() + 120
                while True:
                    later = events(job.id, attempt + 1, ws)
                    if any(e["event"] == "resumed" for e in later):
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit("the preempted job never resumed")
                    time.sleep(0.01)
                saved = next(e for e in events(job.id, attempt, ws)
                             if e["event"] == "saved")
                resumed = next(e for e in later if e["event"] == "resumed")
                u = wait(urgent.id, timeout=60, workspace=ws)
                results.append({
                    "total_s": round(resumed["at"] - t0, 3),
                    "save_s": round(saved["save_s"], 3),
                    "urgent_job_s": round((u.finished_at or 0) - (u.started_at or 0), 3),
                    "placed_again_to_process_start_s": round(resumed["process_start"] - (u.finished_at or 0), 3),
                    "import_s": round(resumed["import_s"], 3),
                    "load_s": round(resumed["load_s"], 3),
                    "resumed_at_step": resumed["step"],
                })
        finally:
            scheduler.stop()
            from forgeml.jobs import cancel

            cancel(job.id, ws)
            ws.close()
    best = min(r["total_s"] for r in results)
    finish("preemption", {"model_mb": args.mb, "runs": results, "best_total_s": best,
                          "median_total_s": sorted(r["total_s"] for r in results)[len(results) // 2],
                          "floor_s": 5.0, "meets_floor": sorted(r["total_s"] for r in results)[len(results) // 2] < 5.0})


if __name__ == "__main__":
    main()
