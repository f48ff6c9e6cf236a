"""Step caching: a key from the step's code, inputs and parameters; outputs kept in the artifact store."""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import pickle
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from forgeml.pipelines import schema


def code_hash(fn: Callable[..., Any]) -> str:
    """Hash a function's source (its bytecode and constants when the source is unavailable)."""
    try:
        text = textwrap.dedent(inspect.getsource(fn)).encode()
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        text = code.co_code + repr(code.co_consts).encode() if code is not None else repr(fn).encode()
    return hashlib.sha256(text).hexdigest()


def value_hash(value: Any) -> str | None:
    """Hash a plain input value by its pickle; None when it cannot be pickled (the step is then not cached)."""
    try:
        data = pickle.dumps(value, protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None
    return hashlib.sha256(data).hexdigest()


def cache_key(step_name: str, code: str, inputs: Any) -> str:
    """Combine a step's name, code hash and input fingerprints into its cache key."""
    blob = json.dumps({"step": step_name, "code": code, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class StoredOutput:
    """Where a step's output lives: an artifact digest and how it was serialized."""

    digest: str
    format: str  # arrow-parquet, pandas-parquet, pickle


def save_output(workspace: Any, value: Any) -> StoredOutput:
    """Serialize an output (Arrow and pandas tables as Parquet, the rest as pickle) into the artifact store."""
    kind = type(value).__module__.split(".")[0]
    if kind in ("pyarrow", "pandas") and type(value).__name__ in ("Table", "DataFrame"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = value if kind == "pyarrow" else pa.Table.from_pandas(value)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        fmt = "arrow-parquet" if kind == "pyarrow" else "pandas-parquet"
        return StoredOutput(workspace.artifacts.put_bytes(buf.getvalue()), fmt)
    return StoredOutput(workspace.artifacts.put_bytes(pickle.dumps(value, protocol=5)), "pickle")


def load_output(workspace: Any, stored: StoredOutput) -> Any:
    """Read an output back from the artifact store."""
    data = workspace.artifacts.get_bytes(stored.digest)
    if stored.format == "pickle":
        return pickle.loads(data)
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    return table.to_pandas() if stored.format == "pandas-parquet" else table


def lookup(workspace: Any, key: str) -> StoredOutput | None:
    """Return the cached output for a key, when one exists and its artifact is still stored."""
    rows = schema.store(workspace).query("SELECT digest, format FROM pipeline_cache WHERE cache_key = ?", (key,))
    if not rows or not workspace.artifacts.exists(rows[0]["digest"]):
        return None
    return StoredOutput(rows[0]["digest"], rows[0]["format"])


def remember(workspace: Any, key: str, step_name: str, stored: StoredOutput, run_id: str) -> None:
    """Record a step's output under its cache key."""
    with schema.store(workspace).transaction() as tx:
        tx.upsert("pipeline_cache", ("cache_key", "step", "digest", "format", "run_id", "created_at"),
                  [(key, step_name, stored.digest, stored.format, run_id, time.time())], keys=("cache_key",))
