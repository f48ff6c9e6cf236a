"""One remote attempt: what it needs, its folder layout, its environment, its run script and status files."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from forgeml.contracts import ExecutionStatus, LaunchRequest
from forgeml.errors import ValidationError
from forgeml.plugins.remote.states import CANCELLED, FAILED, LOST, RUNNING, SUCCEEDED

# Variables describing this machine, never forwarded to another one.
LOCAL_ONLY_ENV = frozenset({"PATH", "HOME", "PWD", "OLDPWD", "USER", "LOGNAME", "SHELL", "TMPDIR", "HOSTNAME",
                            "VIRTUAL_ENV", "CONDA_PREFIX", "CUDA_VISIBLE_DEVICES", "SSH_AUTH_SOCK", "DISPLAY",
                            "TERM", "LANG", "LC_ALL", "SLURM_CONF", "KUBECONFIG", "PYTHONPATH", "_"})

TORCHRUN_MODULE = "torch.distributed.run"


@dataclass(frozen=True)
class Needs:
    """The resources an attempt asks for, read from its LaunchRequest and job spec."""

    gpus: int = 0
    gpu_type: str = ""
    cpus: float | None = None
    memory_mb: int | None = None
    timeout_s: float | None = None
    nodes: int = 1
    framework: str = ""
    array: int | None = None


def _spec_value(spec: Any, *names: str) -> Any:
    for name in names:
        value = spec.get(name) if isinstance(spec, dict) else getattr(spec, name, None)
        if value is not None:
            return value
    return None


def needs_of(request: LaunchRequest) -> Needs:
    """Read the resources an attempt needs (GPU count and type, CPUs, memory, time, nodes)."""
    spec = request.spec
    gpus: Any = _spec_value(spec, "gpus", "gpu_count") if spec is not None else None
    gpu_type = ""
    if gpus is not None and not isinstance(gpus, int | float):
        gpu_type = _spec_value(gpus, "type", "gpu_type") or ""
        gpus = _spec_value(gpus, "count") or 0
    if gpus is None:
        gpus = len(request.gpus)
    gpu_type = gpu_type or (_spec_value(spec, "gpu_type") if spec is not None else "") or ""
    count = int(gpus)
    if count < 0:
        raise ValidationError(f"job {request.job_id} asks for {count} GPUs; give 0 or more")
    cpus = request.cpus if request.cpus is not None else (_spec_value(spec, "cpus") if spec is not None else None)
    memory = request.memory_mb if request.memory_mb is not None else (
        _spec_value(spec, "memory_mb") if spec is not None else None)
    timeout = request.timeout_s if request.timeout_s is not None else (
        _spec_value(spec, "timeout_s") if spec is not None else None)
    nodes = int((_spec_value(spec, "nodes", "num_nodes") if spec is not None else None) or 1)
    framework = str((_spec_value(spec, "framework") if spec is not None else None) or "")
    array = _spec_value(spec, "array", "array_size") if spec is not None else None
    return Needs(count, str(gpu_type), None if cpus is None else float(cpus), None if memory is None else int(memory),
                 None if timeout is None else float(timeout), nodes, framework, None if array is None else int(array))


def forwarded_env(request: LaunchRequest) -> dict[str, str]:
    """Return the variables an attempt on another machine gets: what the job added, forgeml's, and secrets."""
    env: dict[str, str] = {}
    for key, value in request.env.items():
        if key in LOCAL_ONLY_ENV:
            continue
        # a launcher may pass this process's whole environment: forward only what the job added,
        # and the secrets the workspace's plugins.toml reads
        if key.startswith("FORGEML_") or key in request.secrets or os.environ.get(key) != value:
            env[key] = str(value)
    spec_env = _spec_value(request.spec, "env") if request.spec is not None else None
    if isinstance(spec_env, dict):
        env.update({k: str(v) for k, v in spec_env.items()})
    return env


def remote_env(request: LaunchRequest, workspace: str, job_dir: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment for the remote side: forgeml's variables re-pointed at the remote paths."""
    env = forwarded_env(request)
    env.update(extra or {})
    env["FORGEML_HOME"] = workspace
    env["FORGEML_CHECKPOINT_DIR"] = f"{job_dir}/checkpoints"
    env["FORGEML_JOB_DIR"] = job_dir
    env.setdefault("FORGEML_JOB_ID", request.job_id)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def job_dir_name(request: LaunchRequest) -> str:
    """Return the attempt's folder name under the remote jobs folder."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.job_id)
    return f"{safe}-a{request.attempt}"


def exports(env: dict[str, str]) -> str:
    """Render ``export K='v'`` lines."""
    for key in env:
        if not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise ValidationError(f"environment variable name {key!r} is not valid in a shell")
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items()))


def render_run_script(job_dir: str, argv: list[str], env: dict[str, str], workdir: str = ".") -> str:
    """Render the detached run script: pid file first, the command's output to output.log, then exit_code."""
    if not argv:
        raise ValidationError("the job has an empty command; give it a command or a script")
    d = shlex.quote(job_dir)
    return "\n".join([
        "#!/bin/sh",
        "# forgeml remote attempt: writes pid, then output.log, then exit_code (atomically)",
        f"cd {d} || exit 97",
        "echo $$ > pid.tmp && mv pid.tmp pid",
        "mkdir -p checkpoints",
        exports(env),
        f"cd {shlex.quote(job_dir + '/code/' + workdir)} 2>/dev/null || cd {d}/code || cd {d}",
        f"{shlex.join(argv)} >> {d}/output.log 2>&1 < /dev/null",
        "rc=$?",
        f"echo $rc > {d}/exit_code.tmp && mv {d}/exit_code.tmp {d}/exit_code",
        "",
    ])


def status_command(job_dir: str) -> str:
    """Return a shell line printing ``exit|pid|alive|cancelled`` for a job folder."""
    d = shlex.quote(job_dir)
    return (
        f"cd {d} 2>/dev/null || {{ echo 'missing'; exit 0; }}; "
        "e=$(cat exit_code 2>/dev/null); p=$(cat pid 2>/dev/null); a=0; c=0; [ -f cancelled ] && c=1; "
        "if [ -n \"$p\" ]; then "
        "if [ -r /proc/$p/stat ]; then s=$(awk '{print $3}' /proc/$p/stat 2>/dev/null); [ -n \"$s\" ] && [ \"$s\" != Z ] && a=1; "
        "elif kill -0 \"$p\" 2>/dev/null; then a=1; fi; fi; "
        "echo \"$e|$p|$a|$c\""
    )


def parse_status(line: str, started: bool = True) -> ExecutionStatus:
    """Turn a status_command line into an ExecutionStatus."""
    line = line.strip().splitlines()[-1] if line.strip() else ""
    if line == "missing" or not line:
        return ExecutionStatus(LOST, None, "the remote job folder is gone")
    exit_text, pid, alive, cancelled = (line.split("|") + ["", "", "0", "0"])[:4]
    code = int(exit_text) if exit_text.strip().lstrip("-").isdigit() else None
    # an exit code written after a cancel is the signal's (128 + TERM/KILL); any other is a real ending
    if cancelled == "1" and alive != "1" and (code is None or code in (130, 137, 143)):
        return ExecutionStatus(CANCELLED, code, "cancelled")
    if code is not None:
        return ExecutionStatus(SUCCEEDED if code == 0 else FAILED, code, "" if code == 0 else f"exit code {code}")
    if alive == "1":
        return ExecutionStatus(RUNNING, None, "")
    if not pid:
        return ExecutionStatus(RUNNING, None, "queued: starting") if started else ExecutionStatus(LOST, None, "never started")
    return ExecutionStatus(LOST, None, f"process {pid} is gone and left no exit code (host rebooted or killed)")


# ------------------------------------------------------------------ handles
def make_handle(scheme: str, login: str, host: str, port: int, job_dir: str, job_id: str = "") -> str:
    """Encode a handle that a fresh process can reattach from: scheme://user@host:port/job/dir[#job]."""
    frag = f"#{quote(job_id)}" if job_id else ""
    return f"{scheme}://{quote(login)}@{host}:{port}{quote(job_dir)}{frag}"


@dataclass(frozen=True)
class Handle:
    """A decoded handle."""

    scheme: str
    user: str
    host: str
    port: int
    job_dir: str
    job_id: str = ""


def parse_handle(handle: str, scheme: str) -> Handle:
    """Decode a handle made by make_handle, checking its scheme."""
    parts = urlsplit(handle)
    if parts.scheme != scheme or not parts.path:
        raise ValidationError(f"{handle!r} is not a {scheme} job handle (expected {scheme}://user@host:port/dir)")
    return Handle(parts.scheme, unquote(parts.username or ""), parts.hostname or "", parts.port or 0,
                  unquote(parts.path), unquote(parts.fragment))


def split_torchrun(argv: list[str]) -> tuple[str, list[str]]:
    """Return (python, script + args), dropping a single-node torchrun prefix if argv has one."""
    if len(argv) >= 3 and argv[1] == "-m" and argv[2] in {TORCHRUN_MODULE, "torchrun"}:
        rest = argv[3:]
        while rest and rest[0].startswith("--"):
            rest = rest[1:]
        return argv[0], rest
    if argv and argv[0].endswith("torchrun"):
        rest = argv[1:]
        while rest and rest[0].startswith("--"):
            rest = rest[1:]
        return "python3", rest
    return argv[0] if argv else "python3", argv[1:]
