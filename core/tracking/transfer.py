"""Move runs between workspaces (a remote target brings its runs home) and export metric histories."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from forgeml.errors import ValidationError
from forgeml.paths import safe_component, safe_digest, safe_relpath
from forgeml.tracking.records import Run

if TYPE_CHECKING:
    import pyarrow as pa

EXPORT_FORMAT = 1
_RUN_ATTRS = ("id", "name", "experiment", "status", "start_time", "end_time", "parent_id", "job_id", "deleted",
              "context")


def export_run(run_id: str, *, inline_artifacts: bool = True, workspace: Any = None) -> dict[str, Any]:
    """Return a run as a JSON-ready dict: attributes, params, tags, inputs, every metric point, artifacts."""
    from forgeml.tracking.api import _store

    store = _store(workspace)
    run_id = store.resolve_id(run_id)
    if store.writer.pending():
        store.writer.flush()
    run = store.get_run(run_id)
    points = store.metric_history(run_id)
    artifacts = []
    for record in store.artifacts(run_id):
        item: dict[str, Any] = {"path": record.path, "digest": record.digest, "size": record.size}
        if inline_artifacts:
            item["data"] = base64.b64encode(store.workspace.artifacts.get_bytes(record.digest)).decode()
        artifacts.append(item)
    return {
        "format": EXPORT_FORMAT,
        "run": {a: getattr(run, a) for a in _RUN_ATTRS},
        "params": run.params,
        "tags": run.tags,
        "inputs": run.inputs,
        # columnar, so a run with a million points stays a compact document
        "metrics": {"key": [p[0] for p in points], "step": [p[1] for p in points],
                    "ts": [p[2] for p in points], "value": [p[3] for p in points]},
        "artifacts": artifacts,
    }


def import_run(data: dict[str, Any], *, workspace: Any = None) -> Run:
    """Store an exported run, replacing any run with the same id (importing twice changes nothing)."""
    from forgeml.tracking.api import _store

    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT or "run" not in data:
        raise ValidationError(f"not an exported run (expected a dict with format {EXPORT_FORMAT} and a 'run' entry)")
    store = _store(workspace)
    attrs = data["run"]
    missing = [a for a in ("id", "experiment", "status", "start_time") if a not in attrs]
    if missing:
        raise ValidationError(f"exported run lacks {', '.join(missing)}")
    run_id = safe_component(attrs["id"], "imported run id")
    metrics = data.get("metrics") or {}
    columns = [metrics.get(c, []) for c in ("key", "step", "ts", "value")]
    if len({len(c) for c in columns}) > 1:
        raise ValidationError("exported metrics columns have different lengths; the export is corrupt")
    blobs = []
    for item in data.get("artifacts") or []:
        if not isinstance(item, dict) or not {"path", "digest", "size"} <= item.keys():
            raise ValidationError("an exported artifact needs path, digest and size; the export is corrupt")
        item = {**item, "path": safe_relpath(item["path"], "imported artifact path"),
                "digest": safe_digest(item["digest"], "imported artifact digest")}
        if "data" in item:
            digest = store.workspace.artifacts.put_bytes(base64.b64decode(item["data"]))
            if digest != item["digest"]:
                raise ValidationError(f"artifact {item['path']!r} does not match its digest; the export is corrupt")
        elif not store.workspace.artifacts.exists(item["digest"]):
            raise ValidationError(f"artifact {item['path']!r} is not inlined and not in this artifact store")
        blobs.append((item["path"], item["digest"], int(item["size"])))
    run = Run(id=run_id, name=attrs.get("name"), experiment=attrs["experiment"], status=attrs["status"],
              start_time=attrs["start_time"], end_time=attrs.get("end_time"), params=data.get("params") or {},
              tags=data.get("tags") or {}, parent_id=attrs.get("parent_id"), job_id=attrs.get("job_id"),
              deleted=bool(attrs.get("deleted")), context=attrs.get("context") or {})
    # the points' run seq is set by the store once it knows it
    store.import_run(run, list(zip([0] * len(columns[0]), *columns)), blobs,
                     [(i["kind"], i["ref"]) for i in data.get("inputs", [])])
    return store.get_run(run_id)


def metric_histories(run_ids: Sequence[str], keys: Sequence[str] | None = None, workspace: Any = None) -> pa.Table:
    """Return the metric points of runs as an Arrow table (run_id, key, step, timestamp, value)."""
    import pyarrow as pa

    from forgeml.tracking.api import _store

    store = _store(workspace)
    if store.writer.pending():
        store.writer.flush()
    cols: dict[str, list[Any]] = {"run_id": [], "key": [], "step": [], "timestamp": [], "value": []}
    for ref in run_ids:
        run_id = store.resolve_id(ref)
        for key, step, ts, value in store.metric_history(run_id):
            if keys is None or key in keys:
                cols["run_id"].append(run_id)
                cols["key"].append(key)
                cols["step"].append(step)
                cols["timestamp"].append(ts)
                cols["value"].append(value)
    return pa.table({
        "run_id": pa.array(cols["run_id"], pa.string()),
        "key": pa.array(cols["key"], pa.string()),
        "step": pa.array(cols["step"], pa.int64()),
        "timestamp": pa.array([int(t * 1e6) for t in cols["timestamp"]], pa.timestamp("us", tz="UTC")),
        "value": pa.array(cols["value"], pa.float64()),
    })
