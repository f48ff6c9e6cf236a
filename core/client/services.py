"""Registry, jobs and feature calls through `forgeml server`, answering the same types as the local services."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from forgeml.errors import ValidationError


def _model_version(row: dict[str, Any]) -> Any:
    from forgeml.registry.models import ModelVersion

    return ModelVersion(**{k: row[k] for k in ModelVersion.__dataclass_fields__ if k in row})


def get_model_version(client: Any, name: str, ref: int | str) -> Any:
    """Return a version by number, stage or alias."""
    return _model_version(client.call("GET", f"/models/{name}/versions/{ref}"))


def _upload_model(client: Any, model: Any, flavor: str | None, path: Any) -> tuple[str, str, str]:
    """Upload a model object (sklearn, via joblib) or a saved file/folder as a run's artifacts."""
    run = client.call("POST", "/runs", json={"name": "model upload", "experiment": "registry"})
    if model is not None:
        if flavor not in (None, "sklearn") or type(model).__module__.split(".")[0] != "sklearn":
            raise ValidationError("through a server, register_model(model=...) takes scikit-learn models; "
                                  "save other models to a file or folder and pass path=...")
        import joblib

        buf = io.BytesIO()
        joblib.dump(model, buf)
        client.call("PUT", f"/runs/{run['id']}/artifacts/model/model.joblib", content=buf.getvalue())
        client.call("POST", f"/runs/{run['id']}/end", json={"status": "FINISHED"})
        return run["id"], "model/model.joblib", "sklearn"
    src = Path(path)
    files = [(src, src.name)] if src.is_file() else [(p, f"{src.name}/{p.relative_to(src).as_posix()}")
                                                     for p in sorted(src.rglob("*")) if p.is_file()]
    if not files:
        raise ValidationError(f"model path {str(src)!r} does not exist or is empty")
    for file, rel in files:
        client.call("PUT", f"/runs/{run['id']}/artifacts/{rel}", content=file.read_bytes())
    client.call("POST", f"/runs/{run['id']}/end", json={"status": "FINISHED"})
    return run["id"], src.name, flavor or ""


def register_model(client: Any, name: str, model: Any, flavor: str | None, path: Any, run_id: str | None,
                   **fields: Any) -> Any:
    """Register a version on the server: from a run's artifact path, or an uploaded model or file."""
    if (model is None) == (path is None):
        raise ValidationError("give exactly one of model=... (an object) or path=... (a saved file or folder)")
    if run_id is not None and model is None and not Path(path).exists():
        artifact = str(path)
    else:
        run_id, artifact, flavor = _upload_model(client, model, flavor, path)
    body = {"run_id": run_id, "path": artifact, **{k: v for k, v in fields.items() if v is not None}}
    if flavor:
        body["flavor"] = flavor
    return _model_version(client.call("POST", f"/models/{name}/versions", json=body))


def _promotion(row: dict[str, Any]) -> Any:
    from forgeml.contracts import GateResult
    from forgeml.registry.promotion import PromotionResult

    return PromotionResult(_model_version(row["model_version"]), row["old_stage"], None,
                           [GateResult(g["gate"], g["passed"], g["message"]) for g in row["gates"]])


def promote(client: Any, name: str, version: int | str, stage: str, reason: str) -> Any:
    """Promote a version on the server (its gates run there)."""
    return _promotion(client.call("POST", f"/models/{name}/versions/{version}/promote",
                                  json={"stage": str(stage).upper(), "reason": reason}))


def rollback(client: Any, name: str, reason: str) -> Any:
    """Roll production back on the server."""
    return _promotion(client.call("POST", f"/models/{name}/rollback", json={"reason": reason}))


def _job(row: dict[str, Any]) -> Any:
    from forgeml.jobs import Job, JobSpec

    values = {k: row[k] for k in Job.__dataclass_fields__ if k in row and k != "spec"}
    return Job(spec=JobSpec.from_dict({k: v for k, v in row["spec"].items() if v is not None}), **values)


def submit(client: Any, spec: Any) -> Any:
    """Queue a job on the server's workspace."""
    return _job(client.call("POST", "/jobs", json={k: v for k, v in spec.to_dict().items() if v is not None}))


def get_job(client: Any, job_id: str) -> Any:
    """Return a job from the server."""
    return _job(client.call("GET", f"/jobs/{job_id}"))


def cancel(client: Any, job_id: str) -> Any:
    """Cancel a job on the server."""
    return _job(client.call("POST", f"/jobs/{job_id}/cancel", json={}))


def get_online_features(client: Any, entity_rows: Any, features: list[str], full_feature_names: bool) -> Any:
    """Read online features from the server; the answer has the local API's shape."""
    from forgeml.features.retrieval import OnlineFeatures

    rows = entity_rows.to_dict("records") if hasattr(entity_rows, "to_dict") else list(entity_rows)
    answer = client.call("POST", "/features/online", json={"entities": rows, "features": list(features),
                                                           "full_feature_names": full_feature_names})
    columns = answer["columns"]
    order = answer["features"]
    entities = {k: v for k, v in columns.items() if k not in order}
    return OnlineFeatures(entities, {k: columns[k] for k in order},
                          {k: answer["event_us"].get(k, [None] * len(rows)) for k in order}, order)


def push(client: Any, view: str, rows: Any, to: str) -> int:
    """Push rows to a view through the server."""
    if hasattr(rows, "to_json"):
        import json

        records = json.loads(rows.to_json(orient="records", date_format="iso"))
    else:
        records = list(rows)
    return client.call("POST", f"/features/views/{view}/push", json={"rows": records, "to": to})["rows"]


