"""Keyed pseudonyms: HMAC-SHA256 of a value under a secret key read from the environment.

The same value gives the same pseudonym under the same key, so joins, group-bys and entity lookups
still work on pseudonymized columns; without the key a pseudonym cannot be reversed or recomputed
from a guessed value (a plain hash of an e-mail address or a phone number can).

Rotation is by chaining: the key variable holds comma-separated keys ``K0,K1,...``; a pseudonym is
HMAC under K0, then HMAC under each later key of the pseudonym before it, and its prefix says how
many keys made it (``pii_`` one, ``pii2_`` two...). A stored pseudonym is therefore moved under a new
key without the raw value (which forgeml never keeps), by one more HMAC: ``forgeml pseudonyms rotate``
does that to the stores, and ``upgrade`` does it to any table an outside system kept. After the
rotation a leaked earlier key alone no longer lets anyone recompute stored pseudonyms from a guess.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
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


def pii_keys(workspace: Any = None, required: bool = True) -> list[bytes] | None:
    """Return the pseudonym key chain from the environment, oldest first (None when unset and not required)."""
    env = key_env(workspace)
    value = os.environ.get(env)
    if value is None:
        if not required:
            return None
        raise ConfigError(f"environment variable {env} is not set: it holds the secret key of PII pseudonyms "
                          f"(at least {MIN_KEY_CHARS} characters, e.g. `openssl rand -hex 32`)")
    keys = [k.strip() for k in value.split(",")]
    for k in keys:
        if len(k) < MIN_KEY_CHARS:
            raise ConfigError(f"a PII key in {env} has {len(k)} characters; use at least {MIN_KEY_CHARS}")
    return [k.encode() for k in keys]


def pii_key(workspace: Any = None, required: bool = True) -> list[bytes] | None:
    """Return the pseudonym key chain (the older name of pii_keys)."""
    return pii_keys(workspace, required)


PSEUDONYM = re.compile(r"pii(\d*)_[0-9a-f]{32}")


def _layer(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]


def _chain(key: bytes | Sequence[bytes] | None) -> list[bytes]:
    if key is None:
        return list(pii_keys() or [])
    return [key] if isinstance(key, bytes) else list(key)


def pseudonym(value: Any, key: bytes | Sequence[bytes] | None = None) -> str | None:
    """Return the keyed pseudonym of one value as text (None stays None), under every key of the chain."""
    if value is None:
        return None
    keys = _chain(key)
    return upgrade_one(PREFIX + _layer(keys[0], str(value)), keys)


def layers(text: str) -> int:
    """Return how many keys made a pseudonym (0: the text is not a pseudonym)."""
    m = PSEUDONYM.fullmatch(text)
    if m is None:
        return 0
    return int(m.group(1)) if m.group(1) else 1


def upgrade_one(text: str, keys: Sequence[bytes]) -> str:
    """Move one pseudonym made by fewer keys under the rest of the chain (other text is returned as it is)."""
    done = layers(text)
    if done == 0 or done >= len(keys):
        return text
    for n in range(done, len(keys)):
        text = f"pii{n + 1}_" + _layer(keys[n], text)
    return text


def upgrade_text(text: str, keys: Sequence[bytes]) -> str:
    """Upgrade every pseudonym inside a text (a JSON payload, a composite key) under the whole chain."""
    return PSEUDONYM.sub(lambda m: upgrade_one(m.group(0), keys), text)


def upgrade(data: Any, columns: Sequence[str] | None = None, key: Sequence[bytes] | None = None) -> Any:
    """Move the pseudonyms in a table an outside system kept under the current key chain (for joins).

    Takes a pandas DataFrame or an Arrow table and returns the same type; ``columns`` default to every
    text column.
    """
    import pyarrow as pa

    keys = _chain(key)
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    names = list(columns) if columns else [f.name for f in table.schema
                                           if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    for name in names:
        if name not in table.column_names:
            raise ValidationError(f"upgrade: no column {name!r}; columns: {', '.join(table.column_names)}")
        values = [None if v is None else upgrade_one(str(v), keys) for v in table.column(name).to_pylist()]
        table = table.set_column(table.column_names.index(name), name, pa.array(values, pa.string()))
    return table if isinstance(data, pa.Table) else table.to_pandas()


def tokenize(data: Any, columns: Sequence[str], key: bytes | Sequence[bytes] | None = None) -> Any:
    """Replace each named column of a pandas DataFrame or Arrow table by its pseudonyms; return the same type.

    Use it inside a feature view's Python transformation so training data and online features carry
    pseudonyms, never the raw values.
    """
    import pyarrow as pa

    key = _chain(key)
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
