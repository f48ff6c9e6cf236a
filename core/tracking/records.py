"""Domain values of the tracking layer: runs, statuses and artifact records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RUNNING = "RUNNING"
SCHEDULED = "SCHEDULED"
FINISHED = "FINISHED"
FAILED = "FAILED"
KILLED = "KILLED"
STATUSES = (RUNNING, SCHEDULED, FINISHED, FAILED, KILLED)
END_STATUSES = (FINISHED, FAILED, KILLED)


@dataclass
class Run:
    """A tracked run as stored: attributes, params, tags and the latest value of each metric."""

    id: str
    name: str | None
    experiment: str
    status: str
    start_time: float
    end_time: float | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    parent_id: str | None = None
    job_id: str | None = None
    deleted: bool = False
    context: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, str]] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        """Seconds between start and end, or None while the run has not ended."""
        return None if self.end_time is None else self.end_time - self.start_time


@dataclass(frozen=True)
class ArtifactRecord:
    """One file logged to a run: its path inside the run, content digest and size."""

    run_id: str
    path: str
    digest: str
    size: int
    created_at: float
