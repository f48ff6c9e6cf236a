"""Keyed pseudonyms: HMAC-SHA256 of a value under a secret key read from the environment.

The same value gives the same pseudonym under the same key, so joins, group-bys and entity lookups
still work on pseudonymized columns; without the key a pseudonym cannot be reversed or recomputed
from a guessed value (a plain hash of an e-mail address or a phone number can).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence
from typing import Any

from forgeml.errors import ConfigError, ValidationError

DEFAULT_KEY_ENV = "FORGEML_PII_KEY"
MIN_KEY_CHARS = 16
PREFIX = "pii_"


def key_env(workspace: Any = None) -> str:
    """Return the name of the environment variable holding the pseudonym key."""
    if workspace is None:
        return DEFAULT_KEY_ENV
    return str(workspace.config.section("privacy").key_env)


def pii_key(workspace: Any = None, required: bool = True) -> bytes | None:
    """Return the pseudonym key from the environment (None when unset and not required)."""
    env = key_env(workspace)
    value = os.environ.get(env)
    if value is None:
        if not required:
            return None
        raise ConfigError(f"environment variable {env} is not set: it holds the secret key of PII pseudonyms "
                          f"(at least {MIN_KEY_CHARS} characters, e.g. `openssl rand -hex 32`)")
    if len(value) < MIN_KEY_CHARS:
        raise ConfigError(f"the PII key in {env} has {len(value)} characters; use at least {MIN_KEY_CHARS}")
    return value.encode()


def pseudonym(value: Any, key: bytes | None = None) -> str | None:
    """Return the keyed pseudonym of one value as text (None stays None)."""
    if value is None:
        return None
    key = key if key is not None else pii_key()
    digest = hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()  # type: ignore[arg-type]
    return PREFIX + digest[:32]


def tokenize(data: Any, columns: Sequence[str], key: bytes | None = None) -> Any:
    """Replace each named column of a pandas DataFrame or Arrow table by its pseudonyms; return the same type.

    Use it inside a feature view's Python transformation so training data and online features carry
    pseudonyms, never the raw values.
    """
    import pyarrow as pa

    key = key if key is not None else pii_key()
    if isinstance(columns, str):
        columns = [columns]
    if isinstance(data, pa.Table):
        for name in columns:
            if name not in data.column_names:
                raise ValidationError(f"tokenize: no column {name!r}; columns: {', '.join(data.column_names)}")
            values = pa.array([pseudonym(v, key) for v in data.column(name).to_pylist()], pa.string())
            data = data.set_column(data.column_names.index(name), name, values)
        return data
    if hasattr(data, "columns") and hasattr(data, "copy"):
        out = data.copy()
        for name in columns:
            if name not in out.columns:
                raise ValidationError(f"tokenize: no column {name!r}; columns: {', '.join(map(str, out.columns))}")
            out[name] = [pseudonym(None if _missing(v) else v, key) for v in out[name].tolist()]
        return out
    raise ValidationError(f"tokenize takes a pandas DataFrame or an Arrow table, got {type(data).__name__}")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)
