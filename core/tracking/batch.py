"""Logging to a run on another's behalf: batches of metrics, params and tags, and artifacts as bytes.

These are what the HTTP API calls for remote clients; they write synchronously, so a batch the
server acknowledged is stored.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from forgeml.auth.service import require
from forgeml.errors import ValidationError
from forgeml.tracking.records import ArtifactRecord
from forgeml.tracking.store import tracking_store

MAX_POINTS = 1_000_000


def _columns(metrics: Mapping[str, Sequence[Any]]) -> tuple[list[str], list[float], list[int], list[float]]:
    keys = metrics.get("keys")
    values = metrics.get("values")
    if not isinstance(keys, list) or not isinstance(values, list) or len(keys) != len(values):
        raise ValidationError("metrics needs 'keys' and 'values' lists of the same length")
    n = len(keys)
    if n > MAX_POINTS:
        raise ValidationError(f"a batch holds at most {MAX_POINTS} points, got {n}")
    steps = metrics.get("steps")
    stamps = metrics.get("timestamps")
    now = time.time()
    if steps is None:
        steps = [0] * n
    if stamps is None:
        stamps = [now] * n
    if not isinstance(steps, list) or not isinstance(stamps, list) or len(steps) != n or len(stamps) != n:
        raise ValidationError("metrics 'steps' and 'timestamps' must be lists as long as 'keys'")
    try:
        out_values = [float(v) + 0.0 for v in values]  # -0.0 is stored as 0.0, as a local run stores it
        out_steps = [int(s) for s in steps]
        out_stamps = [float(t) for t in stamps]
    except (TypeError, ValueError) as e:
        raise ValidationError(f"metric values, steps and timestamps must be numbers: {e}") from None
    if any(k.__class__ is not str or not k for k in keys):
        raise ValidationError("every metric key must be a non-empty string")
    if not all(math.isfinite(t) for t in out_stamps):
        raise ValidationError("metric timestamps must be finite numbers")
    return keys, out_values, out_steps, out_stamps


def log_batch(run_id: str, metrics: Mapping[str, Sequence[Any]] | None = None,
              params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None,
              workspace: Any = None) -> int:
    """Store a batch for a run: metrics as columns (keys, values, steps, timestamps), params and tags.

    Returns how many metric points were written.
    """
    store = _store(workspace)
    run_id = store.resolve_id(run_id)
    require("runs.write", workspace=store.workspace, subject=f"runs/{run_id}")
    if params:
        store.write_params(run_id, params)
    if tags:
        store.write_tags(run_id, {str(k): str(v) for k, v in tags.items()})
    if not metrics:
        return 0
    keys, values, steps, stamps = _columns(metrics)
    seq = store.seq(run_id)
    store.write_points([(seq, k, s, t, v) for k, v, s, t in zip(keys, values, steps, stamps)])
    return len(keys)


def log_inputs(run_id: str, inputs: Sequence[Mapping[str, Any]], workspace: Any = None) -> list[dict[str, str]]:
    """Record what a run read: each input a {"kind": "dataset", "ref": "name@v3"} object."""
    found = []
    for item in inputs:
        kind, ref = (item.get("kind"), item.get("ref")) if isinstance(item, Mapping) else (None, None)
        if not isinstance(kind, str) or not kind or not isinstance(ref, str) or not ref:
            raise ValidationError(f"each input needs a non-empty 'kind' and 'ref', got {item!r}"[:300])
        found.append((kind, ref))
    if not found:
        raise ValidationError("log_input needs at least one reference, e.g. dataset='name@v3'")
    store = _store(workspace)
    run_id = store.resolve_id(run_id)
    require("runs.write", workspace=store.workspace, subject=f"runs/{run_id}")
    store.add_inputs(run_id, found)
    return [{"kind": k, "ref": r} for k, r in found]


def put_artifact(run_id: str, path: str, data: bytes, workspace: Any = None) -> ArtifactRecord:
    """Store bytes as the artifact at path of a run."""
    store = _store(workspace)
    run_id = store.resolve_id(run_id)
    require("runs.write", workspace=store.workspace, subject=f"runs/{run_id}/{path}")
    if not path or path.startswith("/") or ".." in path.split("/") or "\x00" in path:
        raise ValidationError(f"artifact name {path!r} must be a relative path inside the run")
    digest = store.workspace.artifacts.put_bytes(data)
    return store.add_artifact(run_id, path, digest, len(data))


def get_artifact(run_id: str, path: str, workspace: Any = None) -> bytes:
    """Return the bytes of a run's artifact, verified against its digest."""
    from forgeml.errors import NotFoundError

    store = _store(workspace)
    run_id = store.resolve_id(run_id)
    require("runs.read", workspace=store.workspace, subject=f"runs/{run_id}/{path}")
    for record in store.artifacts(run_id):
        if record.path == path:
            return store.workspace.artifacts.get_bytes(record.digest)
    raise NotFoundError(f"run {run_id} has no artifact {path!r}; list them with `forgeml runs artifacts`")


def _store(workspace: Any) -> Any:
    if workspace is None:
        from forgeml.workspace import current

        workspace = current()
    return tracking_store(workspace)
