"""Ray target benchmark: submit-to-running latency, and a tuning study's trials on a Ray cluster vs the local target.

Needs a Ray cluster's Job Submission API: FORGEML_RAY_DASHBOARD (``tests/services/ray.sh start`` runs a head
and a worker node on loopback and writes it to its env file), else the result says skipped. Trials sleep
for a fixed time (their own work) and report; everything else in a trial's wall time is platform overhead.
The local target runs the same study in the same script. Prints one JSON line.

Usage: python benchmarks/ray_cluster.py [--trials 32 (0: latency only)] [--work-s 2.0] [--submits 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import finish

TRIAL = """
import time, forgeml
x = forgeml.trial_params()["x"]
for step in range(5):
    time.sleep({work} / 5)
    forgeml.report(x + 1.0 / (step + 1), step)
with forgeml.start_run():
    forgeml.log_metric("val_loss", x)
"""


def submit_to_running(address: str, submits: int) -> dict[str, Any]:
    """Launch short jobs one after another; time from launch() to Ray reporting the job RUNNING, by phase.

    ``launch_s`` is forgeml's side (packaging the working directory, the submit request); ``queued_s`` is
    Ray's (the job's supervisor actor needs a fresh worker process, which imports ray, then it starts the
    entrypoint). ``worker_start_s`` times ``import ray`` in a fresh interpreter on this machine: the part of
    ``queued_s`` no client setting can remove.
    """
    import subprocess

    from forgeml.contracts import LaunchRequest
    from forgeml.plugins.ray import RayTargetSettings
    from forgeml.plugins.ray.executor import RayExecutor

    class Workspace:
        dot = Path(tempfile.mkdtemp())

    executor = RayExecutor(RayTargetSettings(address=address, python=sys.executable), Workspace())
    times, launches, queued, imports = [], [], [], []
    with tempfile.TemporaryDirectory() as workdir:
        for i in range(submits):
            argv = [sys.executable, "-c", "import time; time.sleep(1)"]
            request = LaunchRequest(job_id=f"bench-{i}", attempt=1, argv=argv, env={}, workdir=workdir,
                                    log_path=f"{workdir}/{i}.log")
            started = time.perf_counter()
            handle = executor.launch(request)
            launched = time.perf_counter()
            job = handle.removeprefix("ray:")
            while str(executor.client.get_job_status(job).value) == "PENDING":
                time.sleep(0.01)
            running = time.perf_counter()
            times.append(running - started)
            launches.append(launched - started)
            queued.append(running - launched)
            while executor.poll(handle).state == "running":
                time.sleep(0.05)
            begun = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import ray"], check=True, timeout=120)
            imports.append(time.perf_counter() - begun)

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    return {"jobs": submits, "median_s": median(times), "max_s": round(max(times), 3),
            "all_s": [round(t, 3) for t in times], "launch_s": median(launches), "queued_s": median(queued),
            "worker_start_s": median(imports)}


def study(address: str | None, trials: int, work_s: float) -> dict[str, Any]:
    """Run a tuning study on the Ray target (address given) or the local one; return overhead figures."""
    from forgeml.tuning import TuneConfig, parse_space, study_trials, tune
    from forgeml.workspace import Workspace, set_current

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        Workspace.init(root)
        target = "local"
        if address:
            target = "cluster"
            with open(root / "plugins.toml", "a") as f:
                f.write(f'\n[compute.targets.cluster]\nplugin = "ray"\naddress = "{address}"\npython = "{sys.executable}"\n')
        ws = Workspace(root)
        set_current(ws)
        here = os.getcwd()
        os.chdir(root)  # the trials' working directory, uploaded to the cluster with each job
        (root / "trial.py").write_text(TRIAL.format(work=work_s))
        parallel = 3 if address else (os.cpu_count() or 1)
        started = time.time()
        result = tune(TuneConfig(script=str(root / "trial.py"), space=parse_space({"x": {"type": "float", "low": 0.0,
                                                                                       "high": 1.0}}),
                                 trials=trials, parallel=str(parallel), sampler="tpe", seed=0, metric="val_loss",
                                 study_name="bench", target=target), workspace=ws)
        wall = time.time() - started
        frame = study_trials("bench", workspace=ws)
        overhead = [w - work_s for w in frame["duration_s"] if w == w]
        nodes = None
        if address:
            from ray.job_submission import JobSubmissionClient

            from forgeml.jobs import list_jobs

            mine = {j.id for j in list_jobs(workspace=ws)}
            jobs = [j for j in JobSubmissionClient(address).list_jobs() if (j.metadata or {}).get("forgeml_job") in mine]
            nodes = len({j.driver_node_id for j in jobs if j.driver_node_id})
        os.chdir(here)
        set_current(None)
        ws.close()
    return {"target": target, "parallel": parallel, "trials": trials, "complete": result.complete,
            "failed": result.failed, "study_wall_s": round(wall, 2),
            "overhead_per_trial_ms_median": round(1000 * statistics.median(overhead), 1) if overhead else None,
            "nodes_used": nodes}


def main() -> None:
    """Measure both parts and print them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--work-s", type=float, default=2.0)
    parser.add_argument("--submits", type=int, default=10)
    args = parser.parse_args()
    address = os.environ.get("FORGEML_RAY_DASHBOARD")
    if not address:
        finish("ray_cluster", {"skipped": "FORGEML_RAY_DASHBOARD is not set (tests/services/ray.sh start; source "
                                          "its env file)"})
        return
    import ray

    result: dict[str, Any] = {"ray_version": ray.__version__,
                              "cluster": "head (2 CPUs) + worker node (1 CPU) on loopback",
                              "submit_to_running": submit_to_running(address, args.submits)}
    if args.trials:
        result["ray_study"] = study(address, args.trials, args.work_s)
        result["local_study"] = study(None, args.trials, args.work_s)
    result["floors"] = {"submit_to_running_under_2s": result["submit_to_running"]["median_s"] < 2.0}
    finish("ray_cluster", result)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
