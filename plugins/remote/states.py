"""Mapping tables from each target's job states to forgeml's executor states.

Executor states (see :class:`forgeml.contracts.ExecutionStatus`): ``running`` (which includes
queued on the target: the reason then starts with ``queued``), ``succeeded``, ``failed``,
``cancelled`` and ``lost`` (the target no longer knows the job and left no exit status).
"""

from __future__ import annotations

from typing import Any

from forgeml.contracts import ExecutionStatus

RUNNING, SUCCEEDED, FAILED, CANCELLED, LOST = "running", "succeeded", "failed", "cancelled", "lost"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, LOST})

# Slurm job states as squeue, scontrol show job and sacct print them (base name, without "by UID").
SLURM_STATES: dict[str, str] = {
    "PENDING": RUNNING,
    "CONFIGURING": RUNNING,
    "REQUEUED": RUNNING,
    "REQUEUE_HOLD": RUNNING,
    "REQUEUE_FED": RUNNING,
    "RESV_DEL_HOLD": RUNNING,
    "RESIZING": RUNNING,
    "SUSPENDED": RUNNING,
    "STOPPED": RUNNING,
    "RUNNING": RUNNING,
    "COMPLETING": RUNNING,
    "SIGNALING": RUNNING,
    "STAGE_OUT": RUNNING,
    "COMPLETED": SUCCEEDED,
    "FAILED": FAILED,
    "TIMEOUT": FAILED,
    "NODE_FAIL": FAILED,
    "BOOT_FAIL": FAILED,
    "OUT_OF_MEMORY": FAILED,
    "DEADLINE": FAILED,
    "PREEMPTED": FAILED,
    "SPECIAL_EXIT": FAILED,
    "REVOKED": CANCELLED,
    "CANCELLED": CANCELLED,
}
SLURM_QUEUED = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD",
                          "SUSPENDED", "STOPPED"})
SLURM_SHORT = {"PD": "PENDING", "CF": "CONFIGURING", "R": "RUNNING", "CG": "COMPLETING", "CD": "COMPLETED",
               "F": "FAILED", "CA": "CANCELLED", "TO": "TIMEOUT", "NF": "NODE_FAIL", "BF": "BOOT_FAIL",
               "OOM": "OUT_OF_MEMORY", "DL": "DEADLINE", "PR": "PREEMPTED", "S": "SUSPENDED", "ST": "STOPPED",
               "RQ": "REQUEUED", "RH": "REQUEUE_HOLD", "RF": "REQUEUE_FED", "RS": "RESIZING", "RV": "REVOKED",
               "SE": "SPECIAL_EXIT", "SI": "SIGNALING", "SO": "STAGE_OUT", "RD": "RESV_DEL_HOLD"}


def slurm_status(raw_state: str, exit_code: str | None = None, reason: str = "") -> ExecutionStatus:
    """Map a Slurm state (long or short form, maybe "CANCELLED by 0" or "RUNNING+") and "rc:signal"."""
    base = raw_state.strip().split()[0].rstrip("+") if raw_state.strip() else "UNKNOWN"
    base = SLURM_SHORT.get(base, base)
    state = SLURM_STATES.get(base)
    code: int | None = None
    if exit_code:
        rc, _, sig = exit_code.partition(":")
        if rc.isdigit():
            code = int(rc)
            if code == 0 and sig.isdigit() and int(sig):
                code = -int(sig)
    if state is None:
        return ExecutionStatus(LOST, code, f"Slurm reports state {base!r}, which forgeml does not know")
    why = base if not reason or reason == "None" else f"{base} ({reason})"
    if state == RUNNING and base in SLURM_QUEUED:
        why = f"queued: {why}"
    return ExecutionStatus(state, code if state in TERMINAL else None, why)


# Kubernetes: batch/v1 Job conditions, and Kubeflow PyTorchJob conditions (latest true condition wins).
K8S_JOB_CONDITIONS: dict[str, str] = {
    "Complete": SUCCEEDED,
    "SuccessCriteriaMet": SUCCEEDED,
    "Failed": FAILED,
    "FailureTarget": FAILED,
    "Suspended": RUNNING,
}
PYTORCHJOB_CONDITIONS: dict[str, str] = {
    "Created": RUNNING,
    "Running": RUNNING,
    "Restarting": RUNNING,
    "Suspended": RUNNING,
    "Succeeded": SUCCEEDED,
    "Failed": FAILED,
}
# container waiting reasons that will not fix themselves: report them while the job is still "running"
K8S_STUCK_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError",
                               "CreateContainerError", "CrashLoopBackOff"})


def _get(obj: Any, key: str) -> Any:
    """Read a field from an API model or from its JSON dict (camelCase or snake_case)."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        camel = key.split("_")[0] + "".join(p.title() for p in key.split("_")[1:])
        return obj.get(camel)
    return getattr(obj, key, None)


def k8s_job_status(job: Any, cancelled: bool = False) -> ExecutionStatus:
    """Map a batch/v1 Job (V1Job or its JSON) to an executor status."""
    if cancelled:
        return ExecutionStatus(CANCELLED, None, "deleted on cancel")
    status = _get(job, "status") or {}
    for cond in _get(status, "conditions") or []:
        if str(_get(cond, "status")) != "True":
            continue
        kind = _get(cond, "type")
        state = K8S_JOB_CONDITIONS.get(kind)
        if state in TERMINAL:
            reason = _get(cond, "reason") or kind
            message = _get(cond, "message") or ""
            return ExecutionStatus(state, 0 if state == SUCCEEDED else None,
                                   f"{reason}: {message}" if message else reason)
    if _get(status, "active"):
        ready = _get(status, "ready")
        return ExecutionStatus(RUNNING, None, "running" if ready else "queued: pod starting")
    if _get(status, "succeeded"):
        return ExecutionStatus(SUCCEEDED, 0, "Complete")
    return ExecutionStatus(RUNNING, None, "queued: no pod yet")


def k8s_pod_problem(pod: Any) -> str:
    """Return a container waiting reason that needs a person (bad image, missing secret), or ''."""
    status = _get(pod, "status") or {}
    for cs in (_get(status, "container_statuses") or []) + (_get(status, "init_container_statuses") or []):
        waiting = _get(_get(cs, "state"), "waiting")
        reason = _get(waiting, "reason")
        if reason in K8S_STUCK_REASONS:
            message = _get(waiting, "message") or ""
            return f"{reason}: {message}" if message else reason
    return ""


def k8s_exit_code(pod: Any) -> int | None:
    """Return the exit code of a pod's first terminated container, if any."""
    status = _get(pod, "status") or {}
    for cs in _get(status, "container_statuses") or []:
        term = _get(_get(cs, "state"), "terminated")
        if term is not None and _get(term, "exit_code") is not None:
            return int(_get(term, "exit_code"))
    return None


def pytorchjob_status(obj: dict[str, Any], cancelled: bool = False) -> ExecutionStatus:
    """Map a Kubeflow PyTorchJob custom object (JSON) to an executor status."""
    if cancelled:
        return ExecutionStatus(CANCELLED, None, "deleted on cancel")
    conditions = [c for c in (obj.get("status") or {}).get("conditions") or [] if str(c.get("status")) == "True"]
    if not conditions:
        return ExecutionStatus(RUNNING, None, "queued: not created yet")
    last = conditions[-1]
    state = PYTORCHJOB_CONDITIONS.get(last.get("type", ""))
    reason = last.get("reason") or last.get("type", "")
    message = last.get("message") or ""
    why = f"{reason}: {message}" if message else reason
    if state is None:
        return ExecutionStatus(LOST, None, f"PyTorchJob condition {last.get('type')!r} is not known to forgeml")
    if state == RUNNING and last.get("type") == "Created":
        why = f"queued: {why}"
    return ExecutionStatus(state, 0 if state == SUCCEEDED else None, why)
