"""Job calls through `forgeml server` (FORGEML_URL), answering the same types as the local queue."""

from __future__ import annotations

from typing import Any

from forgeml.jobs.queue import Job
from forgeml.jobs.spec import JobSpec


def _job(row: dict[str, Any]) -> Any:
    values = {k: row[k] for k in Job.__dataclass_fields__ if k in row and k != "spec"}
    return Job(spec=JobSpec.from_dict({k: v for k, v in row["spec"].items() if v is not None}), **values)


def submit(client: Any, spec: Any) -> Any:
    """Queue a job on the server's workspace."""
    return _job(client.call("POST", "/jobs", json={k: v for k, v in spec.to_dict().items() if v is not None}))


def get_job(client: Any, job_id: str) -> Any:
    """Return a job from the server."""
    return _job(client.call("GET", f"/jobs/{job_id}"))


def cancel(client: Any, job_id: str) -> Any:
    """Cancel a job on the server."""
    return _job(client.call("POST", f"/jobs/{job_id}/cancel", json={}))
