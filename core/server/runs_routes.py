"""Tracking routes: create runs, log batches, end them, search with the query language, artifacts."""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.responses import Response

from forgeml.auth.service import require
from forgeml.server.api import Call, Operation, Param, body_field, str_map
from forgeml.server.schemas import obj

TAG = "runs"
_RUN = Param("run_id", "path", {"type": "string", "minLength": 1, "maxLength": 64}, True, "Run id or unique prefix.")
_PATH = Param("path", "path", {"type": "string", "minLength": 1, "maxLength": 1000}, True, "Artifact path.")


def run_dict(run: Any) -> dict[str, Any]:
    """Return a run's fields as JSON values."""
    return dataclasses.asdict(run)


def create(call: Call) -> dict[str, Any]:
    """Create a run (RUNNING) with params and tags."""
    from forgeml.tracking import create_run

    run = create_run(body_field(call, "name", str, None), body_field(call, "experiment", str, "default"),
                     tags=str_map(call.body.get("tags"), "tags"), parent=body_field(call, "parent", str, None),
                     params=str_map(call.body.get("params"), "params"), workspace=call.workspace)
    return run_dict(run)


def show(call: Call) -> dict[str, Any]:
    """Return a run with params, tags, latest metrics and inputs."""
    from forgeml.tracking import get_run

    require("runs.read", workspace=call.workspace, subject=f"runs/{call.path['run_id']}")
    return run_dict(get_run(call.path["run_id"], workspace=call.workspace))


def log(call: Call) -> dict[str, Any]:
    """Store a batch of metrics (as columns), params and tags."""
    from forgeml.tracking.batch import log_batch

    metrics = body_field(call, "metrics", dict, None)
    written = log_batch(call.path["run_id"], metrics, str_map(call.body.get("params"), "params"),
                        str_map(call.body.get("tags"), "tags"), workspace=call.workspace)
    return {"points": written}


def inputs(call: Call) -> dict[str, Any]:
    """Record what a run read (datasets, feature views, other references)."""
    from forgeml.tracking.batch import log_inputs

    return {"inputs": log_inputs(call.path["run_id"], body_field(call, "inputs", list, what="[{kind, ref}]"),
                                 workspace=call.workspace)}


def end(call: Call) -> dict[str, Any]:
    """End a run with a status (FINISHED, FAILED or KILLED)."""
    from forgeml.tracking import finish_run
    from forgeml.tracking.api import valid_status

    status = valid_status(body_field(call, "status", str, "FINISHED"))
    require("runs.write", workspace=call.workspace, subject=f"runs/{call.path['run_id']}")
    return run_dict(finish_run(call.path["run_id"], status, workspace=call.workspace))


def search(call: Call) -> dict[str, Any]:
    """Search runs with the query language; answer columns and rows (times as epoch seconds)."""
    import pandas as pd

    from forgeml.tracking import search_runs

    require("runs.read", workspace=call.workspace, subject="runs")
    experiments = call.query.get("experiment")
    frame = search_runs(call.query.get("query", ""), experiments=[experiments] if experiments else None,
                        include_deleted=call.query.get("include_deleted", False), limit=call.query.get("limit"),
                        workspace=call.workspace)
    columns: dict[str, list[Any]] = {}
    for name in frame.columns:
        series = frame[name]
        if str(series.dtype).startswith("datetime64"):
            seconds = ((series - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy()
            columns[name] = [None if v != v else float(v) for v in seconds]
        elif series.dtype.kind == "f":
            columns[name] = [None if v != v else float(v) for v in series.to_numpy()]
        else:
            columns[name] = [None if v is None or v != v else v for v in series.tolist()]
    return {"columns": list(frame.columns), "data": columns, "count": len(frame)}


def history(call: Call) -> dict[str, Any]:
    """Return every point of one metric of a run."""
    from forgeml.tracking.store import tracking_store

    store = tracking_store(call.workspace)
    run_id = store.resolve_id(call.path["run_id"])
    require("runs.read", workspace=call.workspace, subject=f"runs/{run_id}")
    if store.writer.pending():
        store.writer.flush()
    rows = store.metric_history(run_id, call.path["key"])
    return {"steps": [r[1] for r in rows], "timestamps": [r[2] for r in rows], "values": [r[3] for r in rows]}


def artifacts(call: Call) -> dict[str, Any]:
    """List a run's artifacts."""
    from forgeml.tracking import list_artifacts

    require("runs.read", workspace=call.workspace, subject=f"runs/{call.path['run_id']}")
    records = list_artifacts(call.path["run_id"], workspace=call.workspace)
    return {"artifacts": [dataclasses.asdict(r) for r in records]}


def download(call: Call) -> Response:
    """Return one artifact's bytes."""
    from forgeml.tracking.batch import get_artifact

    data = get_artifact(call.path["run_id"], call.path["path"], workspace=call.workspace)
    return Response(data, 200, media_type="application/octet-stream")


def upload(call: Call) -> dict[str, Any]:
    """Store the request body as an artifact of the run."""
    from forgeml.tracking.batch import put_artifact

    return dataclasses.asdict(put_artifact(call.path["run_id"], call.path["path"], call.body, workspace=call.workspace))


_STR_MAP = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}
_NUMS = {"type": "array", "items": {"type": "number"}}
OPERATIONS = [
    Operation("POST", "/runs", create, "Create a run", TAG, body=obj(
        {"name": {"type": "string"}, "experiment": {"type": "string", "minLength": 1}, "parent": {"type": "string"},
         "params": _STR_MAP, "tags": _STR_MAP}), status=201),
    Operation("GET", "/runs", search, "Search runs with the query language", TAG, [
        Param("query", "query", {"type": "string", "maxLength": 5000}, doc="e.g. metrics.auc > 0.9 order by ..."),
        Param("experiment", "query", {"type": "string"}),
        Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100000}),
        Param("include_deleted", "query", {"type": "boolean"})]),
    Operation("GET", "/runs/{run_id}", show, "Show a run", TAG, [_RUN]),
    Operation("POST", "/runs/{run_id}/log", log, "Log a batch of metrics (columns), params and tags", TAG, [_RUN],
              obj({"metrics": obj({"keys": {"type": "array", "items": {"type": "string", "minLength": 1}},
                                   "values": _NUMS, "steps": {"type": "array", "items": {"type": "integer"}},
                                   "timestamps": _NUMS}, ["keys", "values"]),
                   "params": _STR_MAP, "tags": _STR_MAP})),
    Operation("POST", "/runs/{run_id}/inputs", inputs, "Record what a run read", TAG, [_RUN], obj(
        {"inputs": {"type": "array", "minItems": 1, "items": obj(
            {"kind": {"type": "string", "minLength": 1}, "ref": {"type": "string", "minLength": 1}},
            ["kind", "ref"])}}, ["inputs"])),
    Operation("POST", "/runs/{run_id}/end", end, "End a run", TAG, [_RUN],
              obj({"status": {"type": "string", "enum": ["FINISHED", "FAILED", "KILLED"]}})),
    Operation("GET", "/runs/{run_id}/metrics/{key}", history, "A metric's history", TAG,
              [_RUN, Param("key", "path", {"type": "string", "minLength": 1}, True)]),
    Operation("GET", "/runs/{run_id}/artifacts", artifacts, "List a run's artifacts", TAG, [_RUN]),
    Operation("GET", "/runs/{run_id}/artifacts/{path:path}", download, "Download an artifact", TAG, [_RUN, _PATH]),
    Operation("PUT", "/runs/{run_id}/artifacts/{path:path}", upload, "Upload an artifact", TAG, [_RUN, _PATH],
              raw_body=True, status=201),
]
