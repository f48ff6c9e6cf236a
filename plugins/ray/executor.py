"""The Ray executor: each attempt is a Ray job (submit, status, logs, stop) on the cluster's Job Submission API.

Ray places the job: its GPUs, CPUs and memory are the entrypoint's Ray resources, so the job waits in
PENDING until a node has them. The handle is the job's submission id, so another process (a restarted
scheduler) follows the same job through the API; logs are read from the cluster and sliced by byte offset.
"""

from __future__ import annotations

import os
import shlex
import uuid
from typing import Any

from forgeml.contracts import ExecutionStatus, Executor, HealthCheck, LaunchRequest
from forgeml.errors import ConfigError, JobError, RemoteError
from forgeml.plugins.ray import RayTargetSettings
from forgeml.plugins.remote.jobdir import forwarded_env, needs_of

PREFIX = "ray:"
STATES = {"PENDING": "running", "RUNNING": "running", "SUCCEEDED": "succeeded", "FAILED": "failed",
          "STOPPED": "cancelled"}


class RayExecutor(Executor):
    """Submits attempts as Ray jobs with their working directory, environment and resources."""

    name = "ray"

    def __init__(self, settings: RayTargetSettings, workspace: Any):
        self.settings = settings
        self.workspace = workspace
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The Job Submission client, connected on first use."""
        if self._client is None:
            try:
                from ray.job_submission import JobSubmissionClient
            except ImportError as e:
                raise ConfigError(f"the ray executor needs ray: pip install 'forgeml[ray]' ({e})") from e
            override = _address_override()
            try:
                client = JobSubmissionClient(self.settings.address)
            except (ConnectionError, RuntimeError, ValueError) as e:
                via = f" (Ray's client went to {override[0]}={override[1]} instead)" if override else ""
                raise RemoteError(f"Ray cluster at {self.settings.address}{via}: {_first_line(e)}") from e
            used = client.get_address().rstrip("/")
            if override and used != self.settings.address.rstrip("/"):
                raise ConfigError(f"{override[0]}={override[1]} in this environment sends Ray's job client to "
                                  f"{used}, not to the target's address {self.settings.address}: unset it, or "
                                  f"set the target's address to {used}")
            self._client = client
        return self._client

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            if "does not exist" in str(e) or "not found" in str(e).lower():
                raise JobError(f"Ray cluster at {self.settings.address}: {what}: no such job") from e
            raise RemoteError(f"Ray cluster at {self.settings.address}: {what}: {_first_line(e)}") from e

    @staticmethod
    def _job(handle: str) -> str:
        if not isinstance(handle, str) or not handle.startswith(PREFIX + "forgeml-") or len(handle) > 200:
            raise JobError(f"ray executor: {handle!r} is not a handle it issued")
        return handle[len(PREFIX):]

    # ------------------------------------------------------------ contract
    def launch(self, request: LaunchRequest) -> str:
        """Submit the attempt as a Ray job and return its handle at once (Ray queues it until resources free)."""
        needs = needs_of(request)
        submission = f"forgeml-{request.job_id}-{request.attempt}-{uuid.uuid4().hex[:8]}"
        env = {**forwarded_env(request), **self.settings.env, "FORGEML_JOB_ID": request.job_id,
               "PYTHONUNBUFFERED": "1"}
        runtime_env: dict[str, Any] = {"env_vars": env}
        if self.settings.upload_workdir:
            runtime_env.update(working_dir=request.workdir, excludes=list(self.settings.excludes))
        if self.settings.pip:
            runtime_env["pip"] = list(self.settings.pip)
        entrypoint = shlex.join(request.argv)
        if not self.settings.upload_workdir:
            entrypoint = f"cd {shlex.quote(request.workdir)} && {entrypoint}"
        self._call(f"submit job {request.job_id}", self.client.submit_job, entrypoint=entrypoint,
                   submission_id=submission, runtime_env=runtime_env,
                   metadata={"forgeml_job": request.job_id, "attempt": str(request.attempt)},
                   entrypoint_num_gpus=needs.gpus or None, entrypoint_num_cpus=needs.cpus if needs.cpus is not None else self.settings.cpus_per_job,
                   entrypoint_memory=needs.memory_mb * 1024 * 1024 if needs.memory_mb else None,
                   entrypoint_resources=dict(self.settings.resources) or None)
        return PREFIX + submission

    def _stop_marker(self, job: str) -> Any:
        return self.workspace.dot / "ray" / "stopped" / job

    def poll(self, handle: str) -> ExecutionStatus:
        """Return the job's state; a failed job carries its driver's exit code."""
        job = self._job(handle)
        info = self._call(f"status of {job}", self.client.get_job_info, job)
        state = STATES.get(str(getattr(info.status, "value", info.status)), "lost")
        if state == "running" and self._stop_marker(job).exists():
            if str(getattr(info.status, "value", info.status)) == "PENDING":
                return ExecutionStatus("cancelled", None, "cancelled while Ray still queued it for resources")
            self._call(f"stop {job}", self.client.stop_job, job)  # it started after all: stop it again
        if state == "running":
            return ExecutionStatus("running")
        if state == "succeeded":
            return ExecutionStatus("succeeded", 0)
        code = info.driver_exit_code
        if state == "cancelled":
            return ExecutionStatus("cancelled", code, "stopped")
        reason = _first_line(info.message or "") or f"Ray job {info.status}"
        return ExecutionStatus("failed", code if code is not None else 1, reason)

    def cancel(self, handle: str, grace_s: float = 10.0) -> None:
        """Stop the job: Ray sends SIGTERM to the entrypoint, then SIGKILL after its stop wait.

        Ray ignores a stop while the job still waits for resources, so the stop is also recorded in the
        workspace: such a job is reported cancelled, and stopped again should Ray start it later.
        """
        job = self._job(handle)
        marker = self._stop_marker(job)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        self._call(f"stop {job}", self.client.stop_job, job)

    def logs(self, handle: str, offset: int = 0) -> tuple[str, int]:
        """Return the job's output after a byte offset (read whole from the cluster) and the new offset."""
        job = self._job(handle)
        data = self._call(f"logs of {job}", self.client.get_job_logs, job).encode()
        return data[offset:].decode(errors="replace"), max(offset, len(data))

    def python(self) -> str:
        """Return the nodes' interpreter."""
        return self.settings.python

    def describe(self) -> str:
        """Name the cluster's Jobs API address."""
        return f"Ray cluster at {self.settings.address}"

    def check(self) -> list[HealthCheck]:
        """Reach the Jobs API and report the cluster's nodes and resources."""
        import json
        import urllib.request

        where = f"Ray Jobs API at {self.settings.address}"
        try:
            version = self._call("version", self.client.get_version)
        except (RemoteError, ConfigError) as e:
            return [HealthCheck(where, False, str(e))]
        out = [HealthCheck(where, True, f"Ray {version}")]
        try:
            with urllib.request.urlopen(f"{self.settings.address.rstrip('/')}/nodes?view=summary", timeout=10) as r:
                nodes = json.load(r)["data"]["summary"]
        except (OSError, ValueError, KeyError) as e:
            return [*out, HealthCheck("nodes", False, str(e))]
        alive = [n for n in nodes if n.get("raylet", {}).get("state") == "ALIVE"]
        gpus = sum(float(n.get("raylet", {}).get("resourcesTotal", {}).get("GPU", 0)) for n in alive)
        out.append(HealthCheck("nodes", bool(alive), f"{len(alive)} alive, {gpus:g} GPU(s) in total"))
        return out


def _address_override() -> tuple[str, str] | None:
    """The variable through which Ray's job client ignores the address it is given, if one is set."""
    for name in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        if os.environ.get(name):
            return name, os.environ[name]
    return None


def _first_line(error: Any) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
