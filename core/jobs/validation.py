"""Checks a JobSpec against itself and its target before it is queued; errors say how to fix the spec."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from forgeml.contracts import Executor
from forgeml.errors import ValidationError, did_you_mean, unknown_name

from .spec import FRAMEWORKS, KNOWN_GPU_TYPES, JobSpec, gpu_matches, normalize_gpu_type


def check_spec(spec: JobSpec, ws: Any) -> None:
    """Raise ValidationError (or NotFoundError for an unknown target) when the spec cannot run."""
    _check_shape(spec)
    targets = ws.config.targets()
    if spec.target not in targets:
        raise unknown_name("compute target", spec.target, targets, "job spec target")
    executor = ws.executor(spec.target)
    if executor.beside_workspace:
        _check_script(spec)
    if executor.places_gpus:
        _check_placed(spec, ws, executor)
    elif spec.gpu_type:
        _check_gpu_type_name(spec.gpu_type, [])


def _check_shape(spec: JobSpec) -> None:
    if bool(spec.script) == bool(spec.command):
        raise ValidationError("a job needs exactly one of a script (forgeml submit train.py) or a command "
                              "(command = [\"python\", \"-m\", \"pkg.train\"])")
    if spec.command is not None and (not isinstance(spec.command, list)
                                     or not all(isinstance(a, str) for a in spec.command)):
        raise ValidationError(f"command must be a list of strings, got {spec.command!r}")
    if not all(isinstance(a, str) for a in spec.args):
        raise ValidationError(f"args must be strings, got {spec.args!r}")
    if spec.framework not in FRAMEWORKS:
        raise ValidationError(f"unknown framework {spec.framework!r}{did_you_mean(spec.framework, FRAMEWORKS)}; "
                              f"choices: {', '.join(FRAMEWORKS)}")
    if spec.gpus < 0:
        raise ValidationError(f"gpus must be 0 or more, got {spec.gpus}")
    if spec.nproc is not None and spec.nproc < 1:
        raise ValidationError(f"nproc must be 1 or more, got {spec.nproc}")
    if spec.nproc and spec.nproc > 1 and not spec.distributed:
        raise ValidationError("nproc > 1 launches torchrun workers; set strategy = \"ddp\" or \"fsdp\" "
                              "(or framework = \"pytorch\")")
    if spec.gpus == 0 and (spec.gpu_type or spec.min_gpu_memory_mb or spec.shared):
        raise ValidationError("gpu_type, min_gpu_memory and shared need gpus >= 1 (add --gpus 1)")
    if spec.cpus is not None and spec.cpus <= 0:
        raise ValidationError(f"cpus must be more than 0, got {spec.cpus:g}")
    if spec.memory_mb is not None and spec.memory_mb <= 0:
        raise ValidationError(f"memory must be more than 0, got {spec.memory_mb} MiB")
    if spec.retries < 0:
        raise ValidationError(f"retries must be 0 or more, got {spec.retries}")
    if spec.timeout_s is not None and spec.timeout_s <= 0:
        raise ValidationError(f"timeout must be more than 0 seconds, got {spec.timeout_s:g}")
    for ref in spec.datasets:
        if not isinstance(ref, str) or not ref or "@" in ref and not ref.split("@", 1)[1]:
            raise ValidationError(f"bad dataset reference {ref!r}: write name or name@v3")
    if not all(isinstance(k, str) for k in spec.params):
        raise ValidationError("params names must be strings")
    if spec.workdir is not None and not Path(spec.workdir).expanduser().is_dir():
        raise ValidationError(f"workdir {spec.workdir!r} is not a folder")


def _check_script(spec: JobSpec) -> None:
    """A script run beside the workspace must exist here, relative to the job's workdir."""
    if spec.script:
        script = Path(spec.script).expanduser()
        where = spec.resolved_workdir()
        if not (script if script.is_absolute() else where / script).is_file():
            raise ValidationError(f"script {spec.script!r} not found in {where}; check the path "
                                  f"(relative paths start from the job's workdir)")


def _check_gpu_type_name(gpu_type: str, device_names: list[str]) -> None:
    known = {normalize_gpu_type(t) for t in KNOWN_GPU_TYPES}
    if normalize_gpu_type(gpu_type) in known or any(gpu_matches(gpu_type, n) for n in device_names):
        return
    raise ValidationError(f"unknown GPU type {gpu_type!r}{did_you_mean(gpu_type.upper(), KNOWN_GPU_TYPES)}; "
                          f"use a product name such as A100, H100, L40S or RTX4090")


def _describe(names: list[str]) -> str:
    return ", ".join(f"{n}× {name}" for name, n in Counter(names).items()) or "no GPUs"


def _check_placed(spec: JobSpec, ws: Any, executor: Executor) -> None:
    devices = ws.gpu_inventory.devices() if spec.gpus else []
    names = [d.name for d in devices]
    if spec.gpu_type:
        _check_gpu_type_name(spec.gpu_type, names)
    if spec.gpus:
        fit = [d for d in devices if gpu_matches(spec.gpu_type, d.name)]
        kind = f"{spec.gpu_type} GPU" if spec.gpu_type else "GPU"
        if len(fit) < spec.gpus:
            raise ValidationError(
                f"the job asks for {spec.gpus} {kind}{'s' if spec.gpus > 1 else ''} but target {spec.target!r} has "
                f"{len(fit)} ({_describe(names)}); lower --gpus, drop --gpu-type, or submit to another --target"
            )
        if spec.min_gpu_memory_mb:
            big = [d for d in fit if d.memory_total_mb >= spec.min_gpu_memory_mb]
            if len(big) < spec.gpus:
                largest = max((d.memory_total_mb for d in fit), default=0)
                raise ValidationError(
                    f"the job needs {spec.gpus} GPU(s) with {spec.min_gpu_memory_mb} MiB free but the largest "
                    f"{kind} on target {spec.target!r} has {largest} MiB; lower --min-gpu-memory"
                )
    capacity = executor.capacity()
    if capacity is not None:
        cpus, memory_mb = capacity.cpus, capacity.memory_mb
        if spec.cpus and spec.cpus > cpus:
            raise ValidationError(f"the job asks for {spec.cpus:g} CPUs but target {spec.target!r} has {cpus}; lower --cpus")
        if spec.memory_mb and spec.memory_mb > memory_mb:
            raise ValidationError(f"the job asks for {spec.memory_mb} MiB of memory but target {spec.target!r} has "
                                  f"{memory_mb} MiB; lower --memory")
    elif spec.cpus and spec.cpus > (os.cpu_count() or 1):
        raise ValidationError(f"the job asks for {spec.cpus:g} CPUs but this machine has {os.cpu_count()}")
