"""Search spaces from a TOML file: float (log), int (step), categorical and conditional parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeml.errors import ValidationError, did_you_mean

KINDS = ("float", "int", "categorical")


@dataclass(frozen=True)
class Param:
    """One tunable parameter; ``condition`` names earlier parameters' values it depends on."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    condition: dict[str, Any] = field(default_factory=dict)

    def active(self, sampled: dict[str, Any]) -> bool:
        """Whether this parameter applies given the values sampled so far."""
        for key, want in self.condition.items():
            got = sampled.get(key)
            if isinstance(want, list):
                if got not in want:
                    return False
            elif got != want:
                return False
        return True

    def grid_values(self) -> list[Any]:
        """Every value a grid search visits."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))  # type: ignore[arg-type]
        if self.step:
            n = int(round((self.high - self.low) / self.step))  # type: ignore[operator]
            return [self.low + i * self.step for i in range(n + 1)]  # type: ignore[operator]
        raise ValidationError(f"parameter {self.name!r}: a grid search needs `step` (or use categorical values)")


@dataclass(frozen=True)
class SearchSpace:
    """Parameters in the order they are sampled (conditions refer to earlier ones)."""

    params: tuple[Param, ...]

    def sample(self, trial: Any) -> dict[str, Any]:
        """Sample every active parameter with an Optuna trial."""
        out: dict[str, Any] = {}
        for p in self.params:
            if not p.active(out):
                continue
            if p.kind == "float":
                out[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log, step=p.step)
            elif p.kind == "int":
                out[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
            else:
                out[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        return out

    def grid(self) -> dict[str, list[Any]]:
        """The search space as Optuna's GridSampler wants it."""
        return {p.name: p.grid_values() for p in self.params}


def parse_space(data: dict[str, Any], where: str = "search space") -> SearchSpace:
    """Validate a parsed TOML table (one sub-table per parameter) into a SearchSpace."""
    if not isinstance(data, dict) or not data:
        raise ValidationError(f"{where}: expected one table per parameter, e.g. [lr] type = \"float\" low = 1e-5 ...")
    params: list[Param] = []
    seen: set[str] = set()
    for name, spec in data.items():
        here = f"{where}: [{name}]"
        if not isinstance(spec, dict):
            raise ValidationError(f"{here} must be a table with a `type`")
        kind = spec.get("type")
        if kind not in KINDS:
            raise ValidationError(f"{here}: type must be one of {', '.join(KINDS)}, got {kind!r}"
                                  + (did_you_mean(str(kind), KINDS) if isinstance(kind, str) else ""))
        allowed = {"type", "condition"} | ({"choices"} if kind == "categorical" else {"low", "high", "log", "step"})
        for key in spec:
            if key not in allowed:
                raise ValidationError(f"{here}: unknown key {key!r}{did_you_mean(key, allowed)}; "
                                      f"valid: {', '.join(sorted(allowed))}")
        condition = spec.get("condition", {})
        if not isinstance(condition, dict):
            raise ValidationError(f"{here}: condition must be a table like {{ optimizer = \"sgd\" }}")
        for dep in condition:
            if dep not in seen:
                raise ValidationError(f"{here}: condition names {dep!r}, which must be defined above it")
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ValidationError(f"{here}: categorical needs a non-empty `choices` list")
            params.append(Param(name, kind, choices=tuple(choices), condition=condition))
        else:
            low, high = spec.get("low"), spec.get("high")
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
                raise ValidationError(f"{here}: {kind} needs numeric `low` and `high`")
            if low >= high:
                raise ValidationError(f"{here}: low ({low}) must be below high ({high})")
            log = bool(spec.get("log", False))
            if log and low <= 0:
                raise ValidationError(f"{here}: a log scale needs low > 0")
            step = spec.get("step")
            if step is not None and (not isinstance(step, int | float) or step <= 0):
                raise ValidationError(f"{here}: step must be a positive number")
            if log and step is not None and kind == "float":
                raise ValidationError(f"{here}: choose either log or step for a float")
            params.append(Param(name, kind, float(low), float(high), log, step, condition=condition))
        seen.add(name)
    return SearchSpace(tuple(params))


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space TOML file."""
    from forgeml.documents import parse_document, read_text_file

    data = parse_document(read_text_file(path, "search space file"), "toml", f"search space file {str(path)!r}")
    return parse_space(data, str(path))
