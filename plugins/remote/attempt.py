"""What SSH and Slurm targets share: preparing an attempt's folder and bringing its results back."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeml.contracts import ExecutionStatus, LaunchRequest
from forgeml.plugins.remote.bringback import RemoteWorkspace, append_log, bring_back_run, export_local_run
from forgeml.plugins.remote.hosts import Host, expand_home
from forgeml.plugins.remote.jobdir import job_dir_name, remote_env
from forgeml.plugins.remote.settings import SshConnectionSettings
from forgeml.plugins.remote.snapshot import CodeSnapshot, take_snapshot
from forgeml.plugins.remote.states import TERMINAL
from forgeml.plugins.remote.sync import SyncReport, sync_snapshot


@dataclass
class PreparedAttempt:
    """An attempt whose code, inputs and run are in place on the remote side, ready to start."""

    job_dir: str
    root: str
    argv: list[str]
    env: dict[str, str]
    workdir: str
    snapshot: CodeSnapshot
    sync: SyncReport
    meta: dict[str, Any]


def remote_argv(argv: list[str], python: str, snapshot: CodeSnapshot, code_dir: str) -> list[str]:
    """Point an argv at the remote side: this interpreter becomes the target's python, local code paths move."""
    out = []
    root = str(snapshot.root)
    for i, arg in enumerate(argv):
        if i == 0 and arg in {sys.executable, "python", "python3"}:
            out.append(python)
        elif snapshot.files and arg.startswith(root + "/"):
            out.append(code_dir + arg[len(root):])
        else:
            out.append(arg)
    return out


def _inputs(request: LaunchRequest) -> dict[str, Path]:
    """Declared input files of a spec (``inputs``: a list of paths or a {name: path} table)."""
    spec = request.spec
    declared = getattr(spec, "inputs", None) if spec is not None else None
    if isinstance(spec, dict):
        declared = spec.get("inputs")
    if not declared:
        return {}
    if isinstance(declared, dict):
        return {str(k): Path(v) for k, v in declared.items()}
    return {Path(p).name: Path(p) for p in declared}


def prepare_attempt(host: Host, settings: SshConnectionSettings, request: LaunchRequest, workspace: Any,
                    extra_meta: dict[str, Any] | None = None, target: str = "") -> tuple[PreparedAttempt, RemoteWorkspace]:
    """Sync the code snapshot and inputs, set up the remote workspace and seed the job's run there."""
    root = expand_home(settings.remote_root.rstrip("/") or "~/.forgeml-remote", host)
    job_dir = f"{root}/jobs/{job_dir_name(request)}"
    snapshot = take_snapshot(request.workdir, settings.code, tuple(settings.exclude))
    report = sync_snapshot(host, root, job_dir, snapshot, _inputs(request), settings.python)
    remote_ws = RemoteWorkspace(host, f"{root}/workspace", settings.python)
    remote_ws.ensure()
    run_id = request.env.get("FORGEML_RUN_ID", "")
    if run_id:
        data = export_local_run(run_id, workspace)
        if data is not None:
            data.setdefault("tags", {})["forgeml.target"] = target or host.label
            remote_ws.seed_run(data, job_dir)
    env = remote_env(request, remote_ws.path, job_dir, dict(settings.env))
    argv = remote_argv(list(request.argv), settings.python, snapshot, f"{job_dir}/code")
    workdir = snapshot.workdir if snapshot.files else "."
    meta = {"job_id": request.job_id, "attempt": request.attempt, "run_id": run_id, "log_path": request.log_path,
            "launched_at": time.time(), "snapshot": snapshot.provenance(),
            "synced": {"files": report.files, "sent": report.sent, "bytes": report.bytes_sent}, **(extra_meta or {})}
    host.write_bytes(f"{job_dir}/request.json", json.dumps(meta, indent=1).encode())
    return PreparedAttempt(job_dir, root, argv, env, workdir, snapshot, report, meta), remote_ws


@dataclass
class BringBack:
    """Throttled bring-back of one target's attempts: logs every poll, runs every interval and at the end."""

    workspace: Any
    interval_s: float
    _last: dict[str, float] = field(default_factory=dict)
    _done: set[str] = field(default_factory=set)
    _meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def meta(self, host: Host, job_dir: str) -> dict[str, Any]:
        """Return an attempt's request.json (read once; it is how a fresh process reattaches)."""
        if job_dir not in self._meta:
            raw = host.read_bytes(f"{job_dir}/request.json")
            self._meta[job_dir] = json.loads(raw) if raw else {}
        return self._meta[job_dir]

    def after_poll(self, host: Host, remote_ws: RemoteWorkspace, job_dir: str, status: ExecutionStatus,
                   log_name: str = "output.log") -> ExecutionStatus:
        """Copy new log bytes; import the run now and then, and for sure once the attempt ended."""
        meta = self.meta(host, job_dir)
        append_log(host, f"{job_dir}/{log_name}", meta.get("log_path"))
        run_id = meta.get("run_id")
        if not run_id or job_dir in self._done:
            return status
        final = status.state in TERMINAL
        now = time.monotonic()
        with self._lock:
            # the first incremental copy waits one interval: a job that just started has little to show
            due = final or now - self._last.setdefault(job_dir, now) >= self.interval_s
            if due:
                self._last[job_dir] = now
        if not due:
            return status
        try:
            bring_back_run(remote_ws, run_id, self.workspace)
        except Exception as e:  # noqa: BLE001 - reported in the status and retried on the next poll
            what = "bring-back pending" if not final else "run not brought back yet, poll again"
            return ExecutionStatus(status.state, status.exit_code, f"{status.reason} ({what}: {e})".strip())
        if final:
            self._done.add(job_dir)
        return status
