"""Tuning benchmark: GPU occupancy and per-trial platform overhead, with Optuna beside it on the same study.

Both sides run the same study: TPE (seed 0), MedianPruner (1 startup trial, no warm-up steps) and 20
intermediate reports per trial. forgeml's trials are scheduler jobs on a declared 4-GPU inventory;
they sleep for a fixed time (their "own work") and report, so everything else in a trial's wall time
is platform overhead, given in two parts: the process per trial (starting Python and importing
forgeml, measured alone) and forgeml's in-process part (scheduling, placement, bookkeeping, reports
and pruning round-trips). Optuna runs the same objective in one process, with the same sleeps, on its
in-memory, SQLite and journal-file storages (forgeml's studies use the journal file). Prints one
JSON line.

Usage: python benchmarks/tuning.py [--trials 24] [--work-s 2.0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import comparison, finish

REPORTS = 20
TRIAL = """
import os, time, json, forgeml
t0 = time.time()
x = forgeml.trial_params()["x"]
for step in range({reports}):
    time.sleep({work} / {reports})
    forgeml.report(x + 1.0 / (step + 1), step)
    if forgeml.should_prune():
        raise forgeml.TrialPruned()
with forgeml.start_run():
    forgeml.log_metric("val_loss", x)
with open(os.environ["OUT"], "a") as f:
    f.write(json.dumps({{"gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": t0, "end": time.time()}}) + "\\n")
"""


def optuna_side(storage: str, trials: int, work_s: float) -> dict[str, float]:
    """Optuna alone, one process: the same sampler, pruner, reports and sleeps as the forgeml trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(REPORTS):
            time.sleep(work_s / REPORTS)
            trial.report(x + 1.0 / (step + 1), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return x

    with tempfile.TemporaryDirectory() as tmp:
        if storage == "sqlite":
            store = f"sqlite:///{tmp}/peer.db"
        elif storage == "journal":
            from optuna.storages.journal import JournalFileBackend

            store = optuna.storages.JournalStorage(JournalFileBackend(f"{tmp}/peer.journal"))
        else:
            store = None
        study = optuna.create_study(storage=store, sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5),
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
        started = time.perf_counter()
        study.optimize(objective, n_trials=trials)
        elapsed = time.perf_counter() - started
        done = study.trials  # read while the storage still exists
    walls = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done]
    slept = [work_s * (t.last_step + 1) / REPORTS for t in done]
    overhead = [w - s for w, s in zip(walls, slept)]
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in done)
    return {"storage": storage, "trials": trials, "pruned": pruned, "study_wall_s": round(elapsed, 2),
            "overhead_per_trial_ms_median": round(1000 * statistics.median(overhead), 1)}


def process_start_ms(runs: int = 5) -> float:
    """Median time to start Python and import forgeml: what any process-per-trial design pays."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import forgeml; forgeml.trial_params()"], check=True)
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 1)


def main() -> None:
    """Run the study on both sides and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--work-s", type=float, default=2.0, help="Each trial's own work (sleep), in seconds.")
    args = parser.parse_args()
    trials, work_s = args.trials, args.work_s
    import optuna

    from forgeml.jobs.queue import jobs_store
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
                                 gpus_per_trial=1, pruner="median", sampler="tpe", seed=0, metric="val_loss",
                                 pruner_settings={"n_startup_trials": 1, "n_warmup_steps": 0},
                                 study_name="bench", env={"OUT": str(out)}), workspace=ws)
        wall = time.time() - started
        spans = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
        frame = study_trials("bench", workspace=ws)
        busy = sum(s["end"] - s["start"] for s in spans)
        held = sum(r["finished_at"] - r["started_at"] for r in jobs_store(ws).query(
            "SELECT started_at, finished_at FROM jobs WHERE started_at IS NOT NULL AND finished_at IS NOT NULL"))
        steps = frame["last_step"].fillna(REPORTS - 1).astype(int) + 1
        overhead = [w - work_s * s / REPORTS for w, s in zip(frame["duration_s"], steps) if w == w]
    spawn_ms = process_start_ms()
    per_trial = round(1000 * statistics.median(overhead), 1)
    peers = {s: optuna_side(s, trials, work_s) for s in ("memory", "journal", "sqlite")}
    in_process = round(per_trial - spawn_ms, 1)
    finish("tuning", {
        "trials": trials, "trial_work_s": work_s, "reports_per_trial": REPORTS,
        "study": "TPE seed 0, MedianPruner(n_startup_trials=1, n_warmup_steps=0) on both sides",
        "optuna_version": optuna.__version__, "gpus_declared": 4, "study_wall_s": round(wall, 2),
        "pruned": result.pruned, "complete": result.complete, "failed": result.failed,
        "gpu_occupancy_held_by_trial_jobs": round(held / (4 * wall), 3),
        "gpu_occupancy_own_work": round(busy / (4 * wall), 3),
        "overhead_per_trial_ms_median": per_trial,
        "process_start_ms": spawn_ms,
        "in_process_overhead_per_trial_ms": in_process,
        "optuna": peers,
        "floors": {"gpu_occupancy": 0.9, "overhead_per_trial_ms": 300},
        "comparisons": [
            comparison("per-trial overhead, in-process part vs journal", in_process,
                       peers["journal"]["overhead_per_trial_ms_median"], "ms/trial", "optuna journal file",
                       note="forgeml's process start is reported apart"),
            comparison("per-trial overhead, in-process part vs sqlite", in_process,
                       peers["sqlite"]["overhead_per_trial_ms_median"], "ms/trial", "optuna sqlite"),
            comparison("per-trial overhead incl. process vs memory", per_trial,
                       peers["memory"]["overhead_per_trial_ms_median"], "ms/trial", "optuna in-memory",
                       note="forgeml runs each trial as a scheduled process"),
        ],
    })


if __name__ == "__main__":
    main()
