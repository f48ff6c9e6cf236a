"""Tuning benchmark: GPU occupancy and per-trial platform overhead with a declared 4-GPU inventory.

Trials sleep for a fixed time (their "own work") and report a few intermediate values, so everything
else in a trial's wall time is platform overhead: scheduling, process spawn, imports, bookkeeping and
the pruning round-trips. GPU occupancy is given three ways, each over 4 GPUs times the study's wall
time: the time trial jobs held their GPU (start to exit, as the scheduler placed them), the trials'
walls (asked to told), and the trials' own work alone. Prints one JSON line.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

TRIAL = """
import os, time, json, forgeml
t0 = time.time()
for step in range({reports}):
    time.sleep({work} / {reports})
    forgeml.report(float(step), step)
    forgeml.should_prune()
with open(os.environ["OUT"], "a") as f:
    f.write(json.dumps({{"gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": t0, "end": time.time()}}) + "\\n")
"""


REPORTS = 20  # intermediate reports per trial, as in the Optuna figure of the peers' table


def optuna_peer(trials: int = 100) -> dict[str, float]:
    """Optuna alone, in one process: SQLite storage, TPE, MedianPruner, 20 reports per trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(REPORTS):
            trial.report(x + 1.0 / (step + 1), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return x

    with tempfile.TemporaryDirectory() as tmp:
        study = optuna.create_study(storage=f"sqlite:///{tmp}/peer.db", sampler=optuna.samplers.TPESampler(seed=0),
                                    pruner=optuna.pruners.MedianPruner())
        started = time.perf_counter()
        study.optimize(objective, n_trials=trials)
        elapsed = time.perf_counter() - started
    return {"version": optuna.__version__, "trials": trials, "ms_per_trial": round(1000 * elapsed / trials, 1),
            "note": "in-process objective: no process, job or GPU placement per trial"}


def main(trials: int = 24, work_s: float = 2.0) -> None:
    """Run the study and print the figures."""
    from forgeml.tuning import TuneConfig, parse_space, study_trials, tune
    from forgeml.workspace import Workspace, set_current

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        Workspace.init(root)
        text = (root / "plugins.toml").read_text().replace(
            '[scheduler.inventory]\nplugin = "nvml"\n', '[scheduler.inventory]\nplugin = "declared"\ncount = 4\n')
        (root / "plugins.toml").write_text(text)
        ws = Workspace(root)
        set_current(ws)
        out = Path(tmp) / "spans.jsonl"
        (root / "trial.py").write_text(TRIAL.format(work=work_s, reports=REPORTS))
        space = parse_space({"x": {"type": "float", "low": 0.0, "high": 1.0}})
        started = time.time()
        result = tune(TuneConfig(script=str(root / "trial.py"), space=space, trials=trials, parallel="auto",
                                 gpus_per_trial=1, pruner="none", sampler="random", seed=0, metric="none",
                                 study_name="bench", env={"OUT": str(out)}), workspace=ws)
        wall = time.time() - started
        spans = [json.loads(line) for line in out.read_text().splitlines()]
        frame = study_trials("bench", workspace=ws)
        busy = sum(s["end"] - s["start"] for s in spans)
        from forgeml.jobs.queue import jobs_store

        held = sum(r["finished_at"] - r["started_at"] for r in jobs_store(ws).query(
            "SELECT started_at, finished_at FROM jobs WHERE started_at IS NOT NULL AND finished_at IS NOT NULL"))
        trial_walls = frame["duration_s"].dropna().tolist()
        overhead = [w - work_s for w in trial_walls]
        print(json.dumps({
            "benchmark": "tuning", "python": sys.version.split()[0], "gpus_declared": 4, "trials": trials,
            "trial_work_s": work_s, "study_wall_s": round(wall, 2),
            "gpu_occupancy_held_by_trial_jobs": round(held / (4 * wall), 3),
            "gpu_occupancy_own_work": round(busy / (4 * wall), 3),
            "gpu_occupancy_trial_walls": round(sum(trial_walls) / (4 * wall), 3),
            "overhead_per_trial_ms_median": round(1000 * statistics.median(overhead), 1),
            "overhead_per_trial_ms_p90": round(1000 * sorted(overhead)[int(0.9 * (len(overhead) - 1))], 1),
            "reports_per_trial": REPORTS,
            "floors": {"gpu_occupancy": 0.9, "overhead_per_trial_ms": 300},
            "peer_optuna_sqlite_median_pruner": optuna_peer(),
            "trials_failed": result.failed,
        }))


if __name__ == "__main__":
    main()
