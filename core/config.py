"""plugins.toml: typed settings sections, validation with did-you-mean, and the documented default."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from forgeml.errors import ConfigError, did_you_mean

CONFIG_FILE = "plugins.toml"


def setting(default: Any = MISSING, doc: str = "", *, default_factory: Any = MISSING,
            low: float | None = None, high: float | None = None) -> Any:
    """Declare one settings field with its default, the one-line doc written into plugins.toml and its range.

    Without ``low``/``high`` the name decides (see ``implied_range``): ports are 1-65535, and durations,
    sizes and counts are never negative.
    """
    metadata = {"doc": doc, "range": (low, high) if low is not None or high is not None else None}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    if isinstance(default, list | dict):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata=metadata)
    return field(default=default, metadata=metadata)


_NON_NEGATIVE_SUFFIXES = ("_s", "_ms", "_seconds", "_minutes", "_hours", "_days", "_mb", "_gb", "_bytes", "_rows",
                          "_size", "_count", "_workers", "_threads", "_retries", "_limit", "_interval", "_timeout")
_NON_NEGATIVE_NAMES = ("workers", "threads", "retries", "limit", "batch", "timeout", "interval", "count", "size",
                       "capacity", "max_attempts", "attempts")


def implied_range(name: str) -> tuple[float | None, float | None]:
    """Return the range a setting's name implies: a port is 1-65535; a duration, size or count is >= 0."""
    if name == "port" or name.endswith("_port"):
        return 1, 65535
    if name.endswith(_NON_NEGATIVE_SUFFIXES) or name in _NON_NEGATIVE_NAMES or name.startswith(("max_", "min_")):
        return 0, None
    return None, None


def check_range(f: Any, value: Any, where: str) -> Any:
    """Return a number when it lies in its setting's range (never NaN), else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if value != value:
        raise ConfigError(f"{where}: nan is not a value; give a number")
    low, high = (f.metadata.get("range") if f.metadata else None) or implied_range(f.name)
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"from {low:g} to {high:g}" if low is not None and high is not None else \
            f"at least {low:g}" if low is not None else f"at most {high:g}"
        raise ConfigError(f"{where}: {value!r} is out of range; it must be {span}")
    return value


@dataclass(frozen=True)
class Secret:
    """A value read from an environment variable (``{ env = "VAR" }``) and masked when listed."""

    env: str

    def get(self) -> str:
        """Return the variable's value, or raise ConfigError naming it when it is unset."""
        value = os.environ.get(self.env)
        if value is None:
            raise ConfigError(f"environment variable {self.env} is not set (a secret in plugins.toml asks for it)")
        return value

    def __str__(self) -> str:
        return f"<secret from ${self.env}>"


def reveal(value: str | Secret | None) -> str | None:
    """Return a setting that may be a secret as plain text, reading the environment only now."""
    return value.get() if isinstance(value, Secret) else value


def redact_url(url: str) -> str:
    """Return a URL with only its scheme and host, fit for messages, logs and alerts (no path, query or user)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "<url>"
    return f"{parts.scheme}://{host}/..." if parts.scheme else "<url>"


@dataclass
class PluginsSettings:
    """Which plugins load."""

    disabled: list[str] = setting([], "Plugin names to block before entry points load, e.g. [\"nvml\"].")
    local: list[str] = setting(
        [], "Extra plugin modules: dotted paths or .py files relative to this file, e.g. [\"my_plugins.py\"]."
    )


@dataclass
class ProviderSection:
    """A section that picks one provider plugin by name; its other keys are that plugin's settings."""

    plugin: str


# ------------------------------------------------------------------ validation
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check a TOML value against a field annotation and return it converted."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: unexpected value {value!r}")
    if tp is Secret:
        if isinstance(value, Mapping) and set(value) == {"env"} and isinstance(value["env"], str):
            return Secret(value["env"])
        raise ConfigError(f"{where}: expected a secret written as {{ env = \"VAR\" }}, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        inner = args[0] if args else Any
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {type(value).__name__} {value!r}")
        inner = args[1] if len(args) > 1 else Any
        return {k: _coerce(v, inner, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return build_settings(tp, value, where)
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def build_settings(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """Validate a table against a settings dataclass and return an instance; unknown keys are errors."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where} must be a table, got {type(values).__name__} {values!r}")
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in fields(cls)}
    names = list(by_name)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(
                f"{where}: unknown key {key!r}{did_you_mean(key, names)}; valid keys: {', '.join(names) or 'none'}"
            )
        kwargs[key] = check_range(by_name[key], _coerce(value, hints[key], f"{where}.{key}"), f"{where}.{key}")
    for f in fields(cls):
        if f.name not in kwargs and f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"{where}: missing required key {f.name!r}")
    return cls(**kwargs)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning syntax errors into a ConfigError naming the file and line."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (a binary file?): {e.reason} at byte {e.start}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nests too deeply to read") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e


# ------------------------------------------------------------------ rendering the default
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Secret):
        return f'{{ env = "{value.env}" }}'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if value is None:
        return '""'
    return _toml_value(str(value))


def render_table(header: str, doc: str, instance: Any, extra: Mapping[str, Any] | None = None) -> str:
    """Render one commented TOML table from a settings instance (optional fields set to None are shown commented)."""
    lines = [f"# {doc}"] if doc else []
    lines.append(f"[{header}]")
    for key, value in (extra or {}).items():
        lines.append(f"{key} = {_toml_value(value)}")
    for f in fields(instance):
        value = getattr(instance, f.name)
        if is_dataclass(value) or (isinstance(value, dict) and value and all(is_dataclass(v) for v in value.values())):
            continue
        if f.metadata.get("doc"):
            lines.append(f"# {f.metadata['doc']}")
        if value is None:
            lines.append(f"# {f.name} =")
        else:
            lines.append(f"{f.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def settings_to_dict(instance: Any) -> dict[str, Any]:
    """Return a settings instance as plain values with secrets masked, for listing."""
    out: dict[str, Any] = {}
    for f in fields(instance):
        value = getattr(instance, f.name)
        out[f.name] = settings_to_dict(value) if dataclasses.is_dataclass(value) else (
            str(value) if isinstance(value, Secret) else value
        )
    return out
