"""Registry calls through `forgeml server` (FORGEML_URL), answering the same types as the local registry."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from forgeml.contracts import GateResult
from forgeml.errors import ValidationError
from forgeml.registry.models import ModelVersion
from forgeml.registry.promotion import PromotionResult


def _model_version(row: dict[str, Any]) -> Any:
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
    return PromotionResult(_model_version(row["model_version"]), row["old_stage"], None,
                           [GateResult(g["gate"], g["passed"], g["message"]) for g in row["gates"]])


def promote(client: Any, name: str, version: int | str, stage: str, reason: str) -> Any:
    """Promote a version on the server (its gates run there)."""
    return _promotion(client.call("POST", f"/models/{name}/versions/{version}/promote",
                                  json={"stage": str(stage).upper(), "reason": reason}))


def rollback(client: Any, name: str, reason: str) -> Any:
    """Roll production back on the server."""
    return _promotion(client.call("POST", f"/models/{name}/rollback", json={"reason": reason}))
