"""Ray target benchmark: submit-to-running latency, and a tuning study's trials on a Ray cluster vs the local target.

Needs a Ray cluster's Job Submission API: FORGEML_RAY_DASHBOARD (``tests/services/ray.sh start`` runs a head
and a worker node on loopback and writes it to its env file), else the result says skipped. Trials sleep
for a fixed time (their own work) and report; everything else in a trial's wall time is platform overhead.
The local target runs the same study in the same script. Prints one JSON line.

Usage: python benchmarks/ray_cluster.py [--trials 32 (0: latency only)] [--work-s 2.0] [--submits 10]
       [--variants 0 (rounds of other submit options, interleaved)]
"""

from __future__ import annotations

import argparse
import os
import shlex
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


def _started_at(stamp: Path, timeout_s: float = 300.0) -> float:
    """Wait for the entrypoint to write its start time (this machine's clock: the cluster is on loopback)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            text = stamp.read_text()
        except FileNotFoundError:
            text = ""
        if text:
            return float(text)
        time.sleep(0.01)
    raise TimeoutError(f"the entrypoint did not start within {timeout_s:.0f} s")


def _entrypoint(stamp: Path) -> list[str]:
    """A job whose first statement records when its process started running, then sleeps for a second."""
    return [sys.executable, "-c", f"import time; open({str(stamp)!r}, 'w').write(repr(time.time())); time.sleep(1)"]


def _wait_ended(client: Any, job: str) -> None:
    while str(client.get_job_status(job).value) in ("PENDING", "RUNNING"):
        time.sleep(0.05)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def submit_to_running(address: str, submits: int) -> dict[str, Any]:
    """Launch short jobs one after another; time from launch() until the entrypoint process runs, by phase.

    The end point is the entrypoint's own first statement writing ``time.time()`` (so the figure includes
    its interpreter's start). ``launch_s`` is forgeml's side (packaging the working directory, the submit
    request); ``ray_status_running_s`` is when Ray reports RUNNING, which its job supervisor actor does just
    before it spawns the entrypoint. That actor needs a fresh worker process, started through Ray's
    setup_worker.py, which imports ray and then execs default_worker.py, which imports ray again:
    ``import_ray_s`` times one such import in a fresh interpreter on this machine.
    """
    import subprocess

    from forgeml.contracts import LaunchRequest
    from forgeml.plugins.ray import RayTargetSettings
    from forgeml.plugins.ray.executor import RayExecutor

    class Workspace:
        dot = Path(tempfile.mkdtemp())

    executor = RayExecutor(RayTargetSettings(address=address, python=sys.executable), Workspace())
    times, launches, running, imports, loads = [], [], [], [], []
    with tempfile.TemporaryDirectory() as workdir, tempfile.TemporaryDirectory() as stamps:
        for i in range(submits):
            stamp = Path(stamps) / f"{i}"
            request = LaunchRequest(job_id=f"bench-{i}", attempt=1, argv=_entrypoint(stamp), env={},
                                    workdir=workdir, log_path=f"{workdir}/{i}.log")
            loads.append(round(os.getloadavg()[0], 2))
            started = time.time()
            handle = executor.launch(request)
            launched = time.time()
            job = handle.removeprefix("ray:")
            while str(executor.client.get_job_status(job).value) == "PENDING":
                time.sleep(0.01)
            running.append(time.time() - started)
            times.append(_started_at(stamp) - started)
            launches.append(launched - started)
            _wait_ended(executor.client, job)
            begun = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import ray"], check=True, timeout=120)
            imports.append(time.perf_counter() - begun)

    return {"jobs": submits, "until": "the entrypoint process runs its first statement",
            "median_s": _median(times), "max_s": round(max(times), 3), "all_s": [round(t, 3) for t in times],
            "launch_s": _median(launches), "ray_status_running_s": _median(running),
            "import_ray_s": _median(imports), "load_1m": [min(loads), max(loads)]}


VARIANTS = ("forgeml", "no_runtime_env", "working_dir_only", "env_vars_only", "no_resources")


def submit_variants(address: str, rounds: int) -> dict[str, Any]:
    """Submit-to-entrypoint under other submit options on the raw Job Submission client, interleaved per round.

    ``forgeml`` is what the executor sends (working_dir, per-job env vars, 1 CPU); the others drop parts of
    it (``no_resources``: no CPU asked, so Ray starts it on the head node), to show which, if any, lets Ray
    start the job's supervisor sooner. Rounds interleave the variants
    so a change in the machine's load hits them all alike.
    """
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    loads = []
    with tempfile.TemporaryDirectory() as workdir, tempfile.TemporaryDirectory() as stamps:
        (Path(workdir) / "train.py").write_text("print('hello')\n")
        for i in range(rounds):
            for variant in VARIANTS:
                stamp = Path(stamps) / f"{variant}-{i}"
                env = {"FORGEML_JOB_ID": f"bench-{variant}-{i}", "PYTHONUNBUFFERED": "1"}
                full = {"env_vars": env, "working_dir": workdir}
                runtime_env = {"forgeml": full, "no_resources": full, "working_dir_only": {"working_dir": workdir},
                               "env_vars_only": {"env_vars": env}}.get(variant)
                cpus = None if variant == "no_resources" else 1
                loads.append(round(os.getloadavg()[0], 2))
                started = time.time()
                job = client.submit_job(entrypoint=shlex.join(_entrypoint(stamp)),
                                        runtime_env=runtime_env, entrypoint_num_cpus=cpus)
                times[variant].append(_started_at(stamp) - started)
                _wait_ended(client, job)
    out: dict[str, Any] = {v: {"median_s": _median(t), "max_s": round(max(t), 3)} for v, t in times.items()}
    out["rounds"] = rounds
    out["load_1m"] = [min(loads), max(loads)]
    return out


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
        result = tune(TuneConfig(script="trial.py", space=parse_space({"x": {"type": "float", "low": 0.0,
                                                                                       "high": 1.0}}),
                                 trials=trials, parallel=str(parallel), sampler="tpe", seed=0, metric="val_loss",
                                 study_name="bench", target=target), workspace=ws)
        wall = time.time() - started
        frame = study_trials("bench", workspace=ws)
        # a pruned trial stops before its work is done: only complete trials show the platform's share
        done = frame[frame["state"] == "COMPLETE"]
        overhead = [w - work_s for w in done["duration_s"] if w == w]
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
            "pruned": result.pruned, "failed": result.failed, "study_wall_s": round(wall, 2),
            "overhead_per_trial_ms_median": round(1000 * statistics.median(overhead), 1) if overhead else None,
            "overhead_per_trial_ms_max": round(1000 * max(overhead), 1) if overhead else None,
            "nodes_used": nodes}


def main() -> None:
    """Measure both parts and print them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--work-s", type=float, default=2.0)
    parser.add_argument("--submits", type=int, default=10)
    parser.add_argument("--variants", type=int, default=0, help="rounds of the submit-option variants (0: none)")
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
    if args.variants:
        result["submit_variants"] = submit_variants(address, args.variants)
    if args.trials:
        result["ray_study"] = study(address, args.trials, args.work_s)
        result["local_study"] = study(None, args.trials, args.work_s)
    result["floors"] = {"submit_to_running_under_2s": result["submit_to_running"]["median_s"] < 2.0}
    finish("ray_cluster", result)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
