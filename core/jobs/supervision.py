"""What the scheduler decides about one attempt: its environment, whether a failure is transient, backoff."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .queue import Job, checkpoint_dir_for
from .spec import JobSpec

TRANSIENT, PERMANENT = "transient", "permanent"


def job_environment(ws: Any, job: Job, attempt: int, gpus: list[int] | tuple[int, ...],
                    beside: bool = True, pin_gpus: bool = True) -> dict[str, str]:
    """Return the attempt's environment: the FORGEML_* agreement and spec.env, plus the scheduler's own
    environment for an attempt beside the workspace, and the CUDA pinning when the scheduler placed its GPUs
    (a target that places its own jobs picks their GPUs itself).
    """
    # the job opens this workspace's stores too, here or on another machine: keep the variables its
    # plugins.toml reads secrets from (such as FORGEML_PG_URL) while dropping the scheduler's other FORGEML_*
    # the audit key too: a job that registers a model appends to the keyed audit chain
    from forgeml.auth.audit import KEY_ENV

    secrets = ws.config.secret_variables() | {KEY_ENV}
    base = os.environ if beside else {k: v for k, v in os.environ.items() if k in secrets}
    env = {k: v for k, v in base.items()
           if (k in secrets or not k.startswith("FORGEML_")) and k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    spec: JobSpec = job.spec
    env.update(
        FORGEML_HOME=str(ws.root),
        FORGEML_JOB_ID=job.id,
        FORGEML_ATTEMPT=str(attempt),
        FORGEML_CHECKPOINT_DIR=str(checkpoint_dir_for(ws, job.id)),
        FORGEML_PARAMS=json.dumps(spec.params, sort_keys=True),
        FORGEML_DATASETS=json.dumps(spec.datasets),
        FORGEML_JOB_SPEC=json.dumps(spec.to_dict(), default=str),
        FORGEML_STRATEGY=spec.strategy,
        PYTHONUNBUFFERED="1",
    )
    if job.run_id:
        env["FORGEML_RUN_ID"] = job.run_id
    if pin_gpus:
        # NVML numbers GPUs in PCI bus order; make CUDA use the same numbering so the pinning is exact.
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpus)
    if pin_gpus and not gpus and spec.cpus and spec.cpus >= 1:
        env.setdefault("OMP_NUM_THREADS", str(int(spec.cpus)))
    env.update(spec.env)
    return env


def classify_failure(ws: Any, settings: Any, job: Job, exit_code: int | None, log_tail: str) -> str:
    """Return "transient" or "permanent": plugins decide first, then the [scheduler] settings."""
    verdict = ws.plugins.classify_failure(job=job, exit_code=exit_code, log_tail=log_tail)
    if verdict in (TRANSIENT, PERMANENT):
        return verdict
    if exit_code is None:
        return TRANSIENT  # the process vanished (machine trouble, scheduler crash): try again
    if exit_code < 0 and settings.retry_on_signal:
        return TRANSIENT
    if any(marker and marker in log_tail for marker in settings.transient_log_markers):
        return TRANSIENT
    if exit_code in settings.retryable_exit_codes:
        return TRANSIENT
    return PERMANENT


def backoff_delay(settings: Any, failures: int) -> float:
    """Return the delay before retry number `failures` (1-based): base * factor**(n-1), capped."""
    delay = settings.backoff_base_s * settings.backoff_factor ** max(0, failures - 1)
    return float(min(delay, settings.backoff_max_s))


def log_tail(path: str | None, size: int) -> str:
    """Return the last size bytes of a log file ('' when there is none)."""
    if not path:
        return ""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            f.seek(max(0, end - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def finish_run(ws: Any, run_id: str | None, state: str) -> None:
    """Close the job's tracking run with the status matching the job's final state (when tracking exists)."""
    if not run_id:
        return
    try:
        from forgeml.tracking import finish_run as _finish
    except ImportError:
        return
    status = {"SUCCEEDED": "FINISHED", "FAILED": "FAILED", "CANCELLED": "KILLED"}[state]
    _finish(run_id, status, workspace=ws)
