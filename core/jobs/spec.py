"""JobSpec: what to run and what it needs, loaded from TOML/YAML or CLI flags and validated."""

from __future__ import annotations

import json
import math
import re
import shlex
import sys
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from forgeml.errors import ValidationError, did_you_mean
from forgeml.layers import DEFAULT_TARGET

FRAMEWORKS = ("none", "pytorch", "tensorflow", "jax")
# auto: torchrun when framework is pytorch on several GPUs; ddp/fsdp: always torchrun, and
# forgeml.distributed.wrap() applies that strategy; none: one plain process
STRATEGIES = ("auto", "none", "ddp", "fsdp")

# Product families a user may ask for; a name the inventory reports is accepted too.
KNOWN_GPU_TYPES = (
    "A100", "A10", "A10G", "A30", "A40", "A2", "A16", "A4000", "A5000", "A6000", "B100", "B200", "GB200",
    "H100", "H200", "H800", "GH200", "L4", "L40", "L40S", "T4", "V100", "P100", "P40", "P4", "K80",
    "RTX3080", "RTX3090", "RTX4080", "RTX4090", "RTX5090", "RTX6000", "TITANRTX", "MI100", "MI210",
    "MI250", "MI300X",
)

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([KMGTP])(i)?(B)?|(B))?\s*$", re.IGNORECASE)
_POWERS = {"K": 1, "M": 2, "G": 3, "T": 4, "P": 5}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_memory(value: Any, what: str = "memory") -> int:
    """Return MiB from an int (MiB) or a string such as "16Gi", "16GiB", "16GB", "512Mi", "1.5G".

    Binary units (Ki, Mi, Gi, Ti) are powers of 1024; decimal ones (K, KB, M, MB, G, GB) powers of
    1000, as in Kubernetes. A bare number means MiB.
    """
    if isinstance(value, bool):
        raise ValidationError(f"bad {what} {value!r}: write a size such as 16Gi, 16GB or 512Mi")
    if isinstance(value, int | float):
        if value < 0 or not math.isfinite(value):
            raise ValidationError(f"bad {what} {value!r}: it must be a positive size in MiB")
        return int(value)
    if not isinstance(value, str):
        raise ValidationError(f"bad {what} {value!r}: write a size such as 16Gi, 16GB or 512Mi")
    m = _MEMORY.match(value)
    if not m:
        raise ValidationError(
            f"bad {what} {value!r}: write a number with a unit, e.g. 16Gi, 16GiB, 16GB or 512Mi "
            f"(Ki/Mi/Gi/Ti are powers of 1024, K/M/G/T and KB/MB/GB powers of 1000; a bare number is MiB)"
        )
    number, prefix, binary, _b, only_bytes = m.groups()
    amount = float(number)
    if only_bytes:
        return int(amount // 2**20)
    if prefix is None:
        return int(amount)
    base = 1024 if binary else 1000
    return int(amount * base ** _POWERS[prefix.upper()] // 2**20)


def parse_duration(value: Any, what: str = "timeout") -> float:
    """Return seconds from a number or a string such as "90", "90s", "30m", "2h", "1h30m", "1d"."""
    if isinstance(value, bool):
        raise ValidationError(f"bad {what} {value!r}: write seconds or a duration such as 30m or 2h")
    if isinstance(value, int | float):
        if value <= 0 or not math.isfinite(value):
            raise ValidationError(f"bad {what} {value!r}: it must be a positive number of seconds")
        return float(value)
    text = str(value).strip().replace(" ", "")
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValidationError(f"bad {what} {value!r}: write seconds or a duration such as 90s, 30m, 2h or 1h30m")
    total = sum(float(n) * _SECONDS[u.lower()] for n, u in parts)
    if total <= 0:
        raise ValidationError(f"bad {what} {value!r}: it must be longer than zero")
    return total


def normalize_gpu_type(name: str) -> str:
    """Return a GPU name reduced to upper-case letters and digits ("NVIDIA H100 80GB" -> "NVIDIAH10080GB")."""
    return re.sub(r"[^A-Z0-9]", "", name.upper())


def gpu_matches(gpu_type: str | None, device_name: str) -> bool:
    """Return whether a device's product name satisfies a requested type (None accepts any).

    "H100" matches "NVIDIA H100 80GB HBM3", "A100" matches "NVIDIA A100-SXM4-40GB", "RTX4090" matches
    "NVIDIA GeForce RTX 4090"; "A10" does not match an A100.
    """
    if not gpu_type:
        return True
    want = normalize_gpu_type(gpu_type)
    words = [normalize_gpu_type(w) for w in re.split(r"[\s\-_/]+", device_name) if w]
    pairs = [a + b for a, b in zip(words, words[1:])]
    return want in words or want in pairs


@dataclass
class JobSpec:
    """One training job: what to run, what it needs, and where."""

    script: str | None = None
    command: list[str] | None = None
    args: list[str] = field(default_factory=list)
    name: str | None = None
    framework: str = "none"
    gpus: int = 0
    gpu_type: str | None = None
    min_gpu_memory_mb: int | None = None
    shared: bool = False
    cpus: float | None = None
    memory_mb: int | None = None
    nproc: int | None = None
    strategy: str = "auto"
    nodes: int = 1
    datasets: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    priority: int = 0
    retries: int = 0
    timeout_s: float | None = None
    target: str = DEFAULT_TARGET
    preemptible: bool = True
    experiment: str = "default"
    parent_run: str | None = None

    # ------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "job spec") -> JobSpec:
        """Build a spec from a mapping (a TOML/YAML table or flags); friendly keys are converted."""
        if not isinstance(data, dict):
            raise ValidationError(f"{where}: expected a table of job settings, got {type(data).__name__}")
        if "job" in data and isinstance(data["job"], dict) and len(data) == 1:
            data = data["job"]
        names = [f.name for f in fields(cls)]
        aliases = {"min_gpu_memory": "min_gpu_memory_mb", "memory": "memory_mb", "timeout": "timeout_s",
                   "gpu_memory": "min_gpu_memory_mb", "cwd": "workdir", "parameters": "params",
                   "hyperparameters": "params", "dataset": "datasets"}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            canon = aliases.get(key, key)
            if canon not in names:
                raise ValidationError(
                    f"{where}: unknown key {key!r}{did_you_mean(key, names + list(aliases))}; "
                    f"valid keys: {', '.join(names)}"
                )
            kwargs[canon] = value
        try:
            return cls(**_coerce_fields(kwargs, where))
        except TypeError as e:
            raise ValidationError(f"{where}: {e}") from e

    @classmethod
    def from_file(cls, path: str | Path) -> JobSpec:
        """Load a spec from a .toml, .yaml/.yml or .json file; relative paths are from the file's folder."""
        from forgeml.documents import read_document

        path = Path(path)
        data = read_document(path, "job spec file")
        spec = cls.from_dict(data, where=str(path))
        if spec.workdir is None:
            spec.workdir = str(path.parent.resolve())
        elif not Path(spec.workdir).is_absolute():
            spec.workdir = str((path.parent / spec.workdir).resolve())
        return spec

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as plain JSON-able values."""
        return asdict(self)

    def to_json(self) -> str:
        """Return the spec as a JSON string (how the queue stores it)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        """Rebuild a stored spec, ignoring keys a newer forgeml may have added."""
        data = json.loads(text)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    # ------------------------------------------------------------ derived values
    @property
    def display_name(self) -> str:
        """The job's name, or the script/command it runs."""
        if self.name:
            return self.name
        if self.script:
            return Path(self.script).stem
        return Path(self.command[0]).name if self.command else "job"

    @property
    def distributed(self) -> bool:
        """Whether the job is launched through torchrun (DDP or FSDP, or PyTorch on several GPUs)."""
        if self.strategy == "none":
            return False
        return self.strategy in ("ddp", "fsdp") or (self.framework == "pytorch" and max(self.gpus, self.nproc or 0) > 1)

    @property
    def processes(self) -> int:
        """How many processes the job launches on each node (torchrun workers for DDP and FSDP)."""
        if self.nproc:
            return self.nproc
        return self.gpus if self.distributed and self.gpus > 1 else 1

    def argv(self, python: str | None = None) -> list[str]:
        """Return the command line to launch, with torchrun for multi-process PyTorch jobs."""
        python = python or sys.executable
        if self.command:
            return list(self.command) + list(self.args)
        assert self.script is not None
        script = self.script
        if self.distributed and (self.processes > 1 or self.strategy in ("ddp", "fsdp")):
            return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={self.processes}",
                    script, *self.args]
        if script.endswith(".py"):
            return [python, script, *self.args]
        return [script, *self.args]

    def resolved_workdir(self) -> Path:
        """The folder the job runs in (the spec's workdir or the current directory)."""
        return Path(self.workdir).expanduser().resolve() if self.workdir else Path.cwd()


def _coerce_fields(kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    """Convert friendly values (memory strings, durations, command strings) to the field types."""
    out = dict(kwargs)
    if isinstance(out.get("command"), str):
        out["command"] = shlex.split(out["command"])
    if isinstance(out.get("args"), str):
        out["args"] = shlex.split(out["args"])
    if isinstance(out.get("datasets"), str):
        out["datasets"] = [out["datasets"]]
    try:
        for key in ("min_gpu_memory_mb", "memory_mb"):
            if out.get(key) is not None:
                out[key] = parse_memory(out[key], key.removesuffix("_mb").replace("_", " "))
        if out.get("timeout_s") is not None:
            out["timeout_s"] = parse_duration(out["timeout_s"], "timeout")
    except ValidationError as e:
        raise ValidationError(f"{where}: {e}") from None
    if "strategy" in out and out["strategy"] not in STRATEGIES:
        raise ValidationError(f"{where}: strategy must be one of {', '.join(STRATEGIES)}, got {out['strategy']!r}"
                              f"{did_you_mean(str(out['strategy']), list(STRATEGIES))}")
    for key in ("gpus", "priority", "retries", "nproc", "nodes"):
        value = out.get(key)
        if value is None:
            continue
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"{where}: {key} must be a whole number, got {value!r}")
        out[key] = value
    if out.get("nodes") is not None and out["nodes"] < 1:
        raise ValidationError(f"{where}: nodes must be 1 or more, got {out['nodes']}")
    if out.get("cpus") is not None:
        try:
            out["cpus"] = float(out["cpus"])
        except (TypeError, ValueError):
            raise ValidationError(f"{where}: cpus must be a number, got {out['cpus']!r}") from None
    if "env" in out:
        if not isinstance(out["env"], dict):
            raise ValidationError(f"{where}: env must be a table of NAME = value")
        out["env"] = {str(k): str(v) for k, v in out["env"].items()}
    if "params" in out and not isinstance(out["params"], dict):
        raise ValidationError(f"{where}: params must be a table of name = value")
    if "shared" in out and not isinstance(out["shared"], bool):
        raise ValidationError(f"{where}: shared must be true or false")
    for f in fields(JobSpec):
        if f.name in out and out[f.name] is None and f.default is MISSING:
            out.pop(f.name)
    hints = typing.get_type_hints(JobSpec)
    for key, value in out.items():
        if not _fits(value, hints[key]):
            raise ValidationError(f"{where}: {key} has the wrong type ({type(value).__name__} {value!r}); "
                                  f"expected {_type_label(hints[key])}")
    return out


def _fits(value: Any, tp: Any) -> bool:
    """Whether a loaded value matches a field annotation (str, int, float, bool, list[...], dict[...], unions)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if tp is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value) if args else isinstance(value, list)
    if origin is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp) if isinstance(tp, type) else True


def _type_label(tp: Any) -> str:
    return str(tp).replace("typing.", "").replace("<class '", "").replace("'>", "")


def parse_assignments(pairs: list[str] | tuple[str, ...], what: str, typed: bool) -> dict[str, Any]:
    """Parse repeated ``k=v`` flags; typed values are read as JSON when they parse (1e-3, true, [1,2])."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"bad {what} {pair!r}: write NAME=VALUE")
        if typed:
            try:
                out[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                out[key.strip()] = value
        else:
            out[key.strip()] = value
    return out
