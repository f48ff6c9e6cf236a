"""What a run records about where it ran: git state, command line, packages, host, GPUs and job."""

from __future__ import annotations

import getpass
import json
import os
import platform
import socket
import subprocess
import sys
import weakref
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from forgeml.errors import ForgeError
from forgeml.installed import versions

ENV_KEYS = ("CUDA_VISIBLE_DEVICES", "PYTHONHASHSEED", "FORGEML_SEED", "WORLD_SIZE", "RANK", "LOCAL_RANK")
DIFF_ARTIFACT = "_forgeml/git.diff"
JOB_SPEC_ENV = "FORGEML_JOB_SPEC"  # the scheduler hands each attempt its job's spec as JSON here


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode(errors="replace") if done.returncode == 0 else None


def git_state(cwd: str | Path | None = None, max_diff_bytes: int = 5 << 20) -> tuple[dict[str, Any], bytes | None]:
    """Return git facts about the repository holding cwd and its uncommitted diff (None when clean)."""
    where = Path(cwd or os.getcwd())
    status = _git(where, "status", "--porcelain=v2", "--branch", "--untracked-files=normal")
    if status is None:
        return {}, None
    info: dict[str, Any] = {"commit": None, "branch": None, "dirty": False, "untracked": []}
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2]
            info["commit"] = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(" ", 2)[2]
            info["branch"] = None if head == "(detached)" else head
        elif line.startswith("? "):
            info["untracked"].append(line[2:])
        elif line and not line.startswith("#"):
            info["dirty"] = True
    info["untracked"] = info["untracked"][:200]
    root = _git(where, "rev-parse", "--show-toplevel")
    info["root"] = root.strip() if root else None
    remote = _git(where, "config", "--get", "remote.origin.url")
    info["remote"] = remote.strip() if remote else None
    diff = None
    if info["dirty"] and info["commit"]:
        text = _git(where, "diff", "HEAD")
        if text:
            diff = text.encode()
            if len(diff) > max_diff_bytes:
                info["diff_truncated"] = len(diff)
                diff = diff[:max_diff_bytes]
    return info, diff


@lru_cache(maxsize=8)
def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Return the installed version of each named package (read from metadata, never imported)."""
    return versions(names)


_GPUS: weakref.WeakKeyDictionary[Any, list[dict[str, Any]]] = weakref.WeakKeyDictionary()


def gpu_inventory(workspace: Any) -> list[dict[str, Any]]:
    """Return the GPUs the workspace's inventory reports, as plain dicts (read once per process)."""
    if workspace in _GPUS:
        return _GPUS[workspace]
    try:
        devices = workspace.gpu_inventory.devices()
    except ForgeError as e:
        return [{"error": str(e)}]
    found = [{"index": d.index, "name": d.name, "memory_total_mb": d.memory_total_mb, "uuid": d.uuid}
             for d in devices]
    _GPUS[workspace] = found
    return found


def job_context(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the job a process was launched for (from FORGEML_* variables), with its spec when available."""
    env = os.environ if environ is None else environ
    job_id = env.get("FORGEML_JOB_ID")
    if not job_id:
        return {}
    job: dict[str, Any] = {"id": job_id}
    if env.get("FORGEML_PARAMS"):
        try:
            job["params"] = json.loads(env["FORGEML_PARAMS"])
        except json.JSONDecodeError:
            job["params_text"] = env["FORGEML_PARAMS"]
    if env.get("FORGEML_CHECKPOINT_DIR"):
        job["checkpoint_dir"] = env["FORGEML_CHECKPOINT_DIR"]
    spec = job_spec(env)
    if spec is not None:
        job["spec"] = spec
    return job


def job_spec(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """Return the spec the scheduler passed a job in FORGEML_JOB_SPEC, or None when it is absent or unreadable."""
    text = environ.get(JOB_SPEC_ENV)
    if not text:
        return None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError:
        return None
    return spec if isinstance(spec, dict) else None


def capture(workspace: Any, settings: Any, cwd: str | Path | None = None) -> tuple[dict[str, Any], bytes | None]:
    """Capture a run's context; return it and the uncommitted git diff to store as an artifact."""
    context: dict[str, Any] = {
        "argv": list(sys.argv),
        "cwd": str(cwd or os.getcwd()),
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "user": _user(),
        "pid": os.getpid(),
        "packages": package_versions(tuple(settings.packages)),
        "env": {k: os.environ[k] for k in ENV_KEYS if k in os.environ},
        "gpus": gpu_inventory(workspace),
    }
    job = job_context()
    if job:
        context["job"] = job
    diff = None
    if settings.capture_git:
        git, diff = git_state(cwd, settings.max_diff_kb * 1024)
        if git:
            context["git"] = git
    return context, diff


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"
