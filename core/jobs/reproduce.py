"""Resubmit the work a run did: its job spec (or command line), params, datasets and seed, via the scheduler."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeml.errors import ValidationError
from forgeml.jobs.queue import submit
from forgeml.jobs.spec import JobSpec
from forgeml.tracking.context import DIFF_ARTIFACT, git_state
from forgeml.tracking.records import Run

REPRODUCES_TAG = "forgeml.reproduces"


@dataclass
class ReproducePlan:
    """What `runs reproduce` submits: the job spec, warnings about drift from the original, and the job."""

    run_id: str
    spec: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    job_id: str | None = None


def spec_for(run: Run) -> dict[str, Any]:
    """Return the job spec that repeats a run: the job's own spec, else one built from its command line."""
    job = run.context.get("job") or {}
    if isinstance(job.get("spec"), dict):
        spec = dict(job["spec"])
    else:
        argv = list(run.context.get("argv") or [])
        if not argv or argv[0] in ("", "-c", "-"):
            raise ValidationError(f"run {run.id} recorded no job spec and no script to run again (it came from the "
                                  "interactive interpreter or `python -c`); submit it as a job to make it reproducible")
        if argv[0].endswith(".py"):
            spec = {"script": argv[0], "args": argv[1:]}
        else:  # an installed console script (its path) with its arguments
            spec = {"command": argv}
        spec["workdir"] = run.context.get("cwd")
        if job.get("params"):
            spec["params"] = job["params"]
    datasets = [i["ref"] for i in run.inputs if i["kind"] == "dataset"]
    if datasets and not spec.get("datasets"):
        spec["datasets"] = datasets
    env = dict(spec.get("env") or {})
    env.update({k: v for k, v in (run.context.get("env") or {}).items() if k in ("PYTHONHASHSEED", "FORGEML_SEED")})
    spec["env"] = env
    spec["name"] = f"reproduce-{run.name or run.id[:8]}"
    spec["experiment"] = run.experiment
    return spec


def drift_warnings(run: Run) -> list[str]:
    """Return how the code on disk differs from what the run used (commit, uncommitted changes)."""
    recorded = run.context.get("git") or {}
    if not recorded.get("commit"):
        return ["the run recorded no git commit; the code on disk is used as it is"]
    where = recorded.get("root") or run.context.get("cwd")
    if not where or not Path(where).is_dir():
        return [f"the run's repository {where!r} is not on this machine"]
    now, _ = git_state(where)
    warnings = []
    if now.get("commit") != recorded["commit"]:
        warnings.append(f"the repository is at {str(now.get('commit'))[:12]}, the run used "
                        f"{recorded['commit'][:12]}: run `git checkout {recorded['commit'][:12]}` first")
    if recorded.get("dirty"):
        warnings.append(f"the run had uncommitted changes: apply them with `forgeml runs download {run.id[:8]} "
                        f"{DIFF_ARTIFACT} --dest .` and `git apply {DIFF_ARTIFACT}`")
    return warnings


def reproduce(run_id: str, target: str | None = None, dry_run: bool = False, workspace: Any = None) -> ReproducePlan:
    """Resubmit a run's work through the scheduler (forgeml.jobs.submit); dry_run only plans it."""
    from forgeml.tracking.api import _store

    store = _store(workspace)
    run = store.get_run(run_id)
    spec = spec_for(run)
    if target:
        spec["target"] = target
    spec["env"][REPRODUCES_TAG.upper().replace(".", "_")] = run.id
    plan = ReproducePlan(run.id, spec, drift_warnings(run))
    if dry_run:
        return plan
    known = {f.name for f in dataclasses.fields(JobSpec)}
    job_spec = JobSpec.from_json(json.dumps({k: v for k, v in spec.items() if k in known}))
    job = submit(job_spec, store.workspace)
    plan.job_id = getattr(job, "id", None)
    return plan
