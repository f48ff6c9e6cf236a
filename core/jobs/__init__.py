"""Training jobs: specs, the queue, the GPU-aware scheduler and supervision."""

from __future__ import annotations

from .checkpoint import checkpoint_dir, job_params, latest_checkpoint
from .queue import (
    CANCELLED,
    FAILED,
    PENDING,
    RUNNING,
    STATES,
    SUCCEEDED,
    Job,
    cancel,
    follow_logs,
    get_job,
    job_attempts,
    job_events,
    list_jobs,
    read_logs,
    retry,
    submit,
    wait,
)
from .spec import JobSpec, parse_duration, parse_memory

__all__ = [
    "CANCELLED", "FAILED", "PENDING", "RUNNING", "STATES", "SUCCEEDED", "Job", "JobSpec", "Scheduler", "cancel",
    "checkpoint_dir", "follow_logs", "get_job", "job_attempts", "job_events", "job_params", "latest_checkpoint",
    "list_jobs", "parse_duration", "parse_memory", "read_logs", "retry", "submit", "wait",
]


def __getattr__(name: str):
    if name == "Scheduler":
        from .scheduler import Scheduler

        return Scheduler
    raise AttributeError(f"module 'forgeml.jobs' has no attribute {name!r}")
