"""Builds a JobSpec from `forgeml submit` flags, optionally on top of a spec file."""

from __future__ import annotations

import shlex
from typing import Any

from .spec import JobSpec, parse_assignments

# flag name -> JobSpec field; values given on the command line override the spec file
_FLAGS = {
    "name": "name", "framework": "framework", "gpus": "gpus", "gpu_type": "gpu_type",
    "min_gpu_memory": "min_gpu_memory_mb", "shared": "shared", "cpus": "cpus", "memory": "memory_mb",
    "nproc": "nproc", "workdir": "workdir", "priority": "priority", "retries": "retries", "timeout": "timeout_s",
    "target": "target", "strategy": "strategy", "nodes": "nodes",
}


def spec_from_flags(script: str | None, args: list[str], spec_file: str | None, flags: dict[str, Any]) -> JobSpec:
    """Return the spec the flags describe: the spec file's values, overridden by each flag given."""
    data: dict[str, Any] = JobSpec.from_file(spec_file).to_dict() if spec_file else {}
    if script:
        data["script"], data["command"] = script, None
        data["args"] = list(args)
    elif args:
        data["args"] = list(args)
    if flags.get("command"):
        data["command"], data["script"] = shlex.split(flags["command"]), None
    for flag, key in _FLAGS.items():
        if flags.get(flag) is not None:
            data[key] = flags[flag]
    if flags.get("no_preempt"):
        data["preemptible"] = False
    if flags.get("params"):
        data["params"] = {**data.get("params", {}), **parse_assignments(flags["params"], "--param", typed=True)}
    if flags.get("env"):
        data["env"] = {**data.get("env", {}), **parse_assignments(flags["env"], "--env", typed=False)}
    if flags.get("datasets"):
        data["datasets"] = [*data.get("datasets", []), *flags["datasets"]]
    return JobSpec.from_dict({k: v for k, v in data.items() if v is not None}, where="forgeml submit")
