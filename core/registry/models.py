"""Model versions: register (content-addressed), look up by version, stage or alias, and load."""

from __future__ import annotations

import dataclasses
import getpass
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forgeml.auth.service import require
from forgeml.client import remote
from forgeml.errors import CorruptObjectError, NotFoundError, ValidationError, unknown_name
from forgeml.paths import extract_archive
from forgeml.registry import store as persisted
from forgeml.registry.cache import bump as bump_generation
from forgeml.registry.inputs import META_FILE, infer_inputs, infer_outputs
from forgeml.registry.schema import store

STAGES = ("STAGING", "CANDIDATE", "PRODUCTION", "ARCHIVED")
RESERVED_REFS = {"latest", *(s.lower() for s in STAGES)}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass
class ModelVersion:
    """One registered version of a model."""

    name: str
    version: int
    stage: str
    aliases: list[str]
    flavor: str
    artifact_digest: str
    signature: dict[str, Any]
    metrics: dict[str, float]
    params: dict[str, Any]
    datasets: list[str]
    feature_views: list[str]
    entity_keys: list[str]
    run_id: str | None
    created_at: float
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    stage_changed_at: float = 0.0

    @property
    def uri(self) -> str:
        """Return ``name@version``."""
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """Return plain values for JSON output."""
        out = asdict(self)
        out["uri"] = self.uri
        return out


def workspace_or_current(workspace: Any) -> Any:
    """Return the given workspace or this process's current one."""
    if workspace is not None:
        return workspace
    from forgeml.workspace import current

    return current()


def default_actor() -> str:
    """Return who is acting: a principal authenticated by a server, else FORGEML_ACTOR, else the login name."""
    from forgeml.auth.service import acting_principal

    acting = acting_principal()
    if acting is not None:
        return acting.name
    actor = os.environ.get("FORGEML_ACTOR")
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def check_name(name: str) -> str:
    """Validate a model name."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(f"invalid model name {name!r}: use letters, digits, '_', '-' and '.'")
    return name


def normalize_stage(stage: str) -> str:
    """Return the canonical upper-case stage or raise a did-you-mean error."""
    upper = str(stage).upper()
    if upper not in STAGES:
        raise unknown_name("stage", str(stage), STAGES)
    return upper


def from_row(row: dict[str, Any], aliases: list[str]) -> ModelVersion:
    """Build a ModelVersion from a registry_versions row."""
    return ModelVersion(
        name=row["name"], version=row["version"], stage=row["stage"], aliases=sorted(aliases), flavor=row["flavor"],
        artifact_digest=row["artifact_digest"], signature=json.loads(row["signature"]),
        metrics=json.loads(row["metrics"]), params=json.loads(row["params"]), datasets=json.loads(row["datasets"]),
        feature_views=json.loads(row["feature_views"]), entity_keys=json.loads(row["entity_keys"]),
        run_id=row["run_id"], created_at=row["created_at"], tags=json.loads(row["tags"]),
        description=row["description"], stage_changed_at=row["stage_changed_at"],
    )


def audit(tx: Any, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None:
    """Append one record to the core audit log inside the caller's transaction."""
    from forgeml.auth.audit import append_one

    append_one(tx, actor, action, subject, detail)


# ------------------------------------------------------------------ packaging
def _pack(folder: Path) -> bytes:
    """Tar a model folder deterministically (sorted names, zeroed times and owners)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for p in sorted(folder.rglob("*")):
            info = tar.gettarinfo(str(p), arcname=str(p.relative_to(folder)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.pax_headers = {}
            if p.is_file():
                with open(p, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def model_folder(ws: Any, digest: str) -> Path:
    """Return the unpacked folder of a model artifact, unpacking it once (atomically) when needed."""
    final = ws.dot / "registry" / "models" / digest
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{digest}.{uuid.uuid4().hex}"
    try:
        with ws.artifacts.open(digest) as f, tarfile.open(fileobj=io.BytesIO(f.read()), mode="r") as tar:
            extract_archive(tar, tmp)
    except tarfile.TarError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CorruptObjectError(f"model artifact {digest[:12]} is not a safe model archive: {e}") from e
    try:
        os.replace(tmp, final)
    except OSError:  # another process unpacked the same digest first
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def runtime_for(ws: Any, flavor: str, **options: Any) -> Any:
    """Build the runtime plugin of a flavor with its plugins.toml settings (plus overrides)."""
    provider = ws.plugins.provider("runtimes", flavor, "model flavor")
    settings = None
    if provider.settings is not None:
        section = f"runtimes.{flavor}"
        settings = (ws.config.section(section) if section in ws.plugins.settings_sections()
                    else provider.settings())
        if options:
            names = {f.name for f in dataclasses.fields(settings)}
            bad = sorted(set(options) - names)
            if bad:
                raise unknown_name(f"{flavor} runtime option", bad[0], names)
            settings = dataclasses.replace(settings, **options)
    elif options:
        raise ValidationError(f"the {flavor} runtime takes no options, got {', '.join(options)}")
    return provider.build(settings, ws)


# ------------------------------------------------------------------ registering
def register_model(name: str, model: Any = None, flavor: str | None = None, path: str | Path | None = None,
                   run_id: str | None = None, input_example: Any = None, metrics: dict[str, float] | None = None,
                   params: dict[str, Any] | None = None, datasets: list[str] | None = None,
                   feature_views: list[str] | None = None, entity_keys: list[str] | None = None,
                   tags: dict[str, str] | None = None, description: str = "", actor: str | None = None,
                   background: Any = None, training_data: Any = None, workspace: Any = None) -> ModelVersion:
    """Store a model (an object, a saved file/folder, or a path inside run_id's artifacts) as the next version.

    The new version starts in STAGING; its bytes are stored once, addressed by their sha256.
    ``background`` (training rows, sampled down to 100) is stored inside the version for explanations;
    without it, an input_example of several rows serves as the background. Per-column training
    statistics (mean, or mode for text) are stored from ``training_data``, else the background rows.
    """
    if workspace is None and (client := remote()) is not None:
        from forgeml.registry import remote as via_server

        return via_server.register_model(client, name, model, flavor, path, run_id, metrics=metrics, params=params,
                                       datasets=datasets, feature_views=feature_views, entity_keys=entity_keys,
                                       tags=tags, description=description or None)
    ws = workspace_or_current(workspace)
    check_name(name)
    require("models.register", model=name, workspace=ws)
    if flavor is None:
        flavor = _guess_flavor(model)
    if (model is None) == (path is None):
        raise ValidationError("give exactly one of model=... (an object) or path=... (a saved file or folder)")
    runtime = runtime_for(ws, flavor)
    dataset_refs = _canonical_datasets(ws, datasets or [])
    with tempfile.TemporaryDirectory(prefix="forgeml-model-") as tmp:
        folder = Path(tmp) / "model"
        if model is not None:
            runtime.save(model, folder)
        else:
            src = Path(path)
            if run_id is not None and not src.exists():
                # a path inside the run's artifacts: fetch it from tracking (verified by digest)
                from forgeml.tracking import download_artifacts

                download_artifacts(run_id, Path(tmp) / "run", path=str(path), workspace=ws)
                src = Path(tmp) / "run" / str(path).strip("/")
            if src.is_dir():
                shutil.copytree(src, folder)
            elif src.is_file():
                runtime.import_file(src, folder)
            else:
                raise NotFoundError(f"model path {str(src)!r} does not exist")
        signature: dict[str, Any] = {}
        if input_example is not None:
            signature["inputs"] = infer_inputs(input_example)
            (folder / META_FILE).write_text(json.dumps({"flavor": flavor, "signature": signature}))
            loaded = runtime.load(folder, device="cpu")
            signature["outputs"] = infer_outputs(loaded.predict(input_example))
        elif model is not None and getattr(model, "feature_names_in_", None) is not None:
            signature["inputs"] = [{"name": str(c), "type": "double"} for c in model.feature_names_in_]
        (folder / META_FILE).write_text(json.dumps({"flavor": flavor, "signature": signature}, sort_keys=True))
        sample = background if background is not None else _example_rows(input_example)
        if sample is not None:
            from forgeml.registry.background import write_background

            write_background(folder, sample)
        rows = training_data if training_data is not None else sample
        if rows is not None:
            from forgeml.registry.statistics import write_statistics

            write_statistics(folder, rows, training=training_data is not None)
        digest = ws.artifacts.put_bytes(_pack(folder))
    now = time.time()
    actor = actor or default_actor()
    db = store(ws)
    with db.transaction() as tx:
        version = persisted.add_version(tx, name, {
            "flavor": flavor, "artifact_digest": digest, "signature": signature, "metrics": _floats(metrics or {}),
            "params": params or {}, "datasets": dataset_refs, "feature_views": list(feature_views or []),
            "entity_keys": list(entity_keys or []), "tags": tags or {}, "description": description, "run_id": run_id,
        }, now)
        audit(tx, actor, "model.register", f"model:{name}@{version}",
              {"flavor": flavor, "artifact_digest": digest, "run_id": run_id, "to": "STAGING"})
        bump_generation(tx)
    mv = get_model_version(name, version, workspace=ws)
    ws.plugins.on_model_version_registered(model_version=mv, workspace=ws)
    return mv


def _example_rows(example: Any) -> Any:
    """An input example of several rows (a table, not one dict row) doubles as the background sample."""
    rows = getattr(example, "num_rows", None)
    if rows is None and type(example).__name__ == "DataFrame":
        rows = len(example)
    return example if rows is not None and rows >= 2 else None


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in metrics.items()}
    except (TypeError, ValueError) as e:
        raise ValidationError(f"metrics must be numbers: {e}") from e


def _guess_flavor(model: Any) -> str:
    module = type(model).__module__.split(".")[0]
    if module == "sklearn":
        return "sklearn"
    if module == "torch":
        return "torch"
    if module == "onnx" or isinstance(model, bytes | bytearray):
        return "onnx"
    if model is not None and callable(model):
        return "python"
    raise ValidationError("cannot tell the model's flavor; pass flavor= one of sklearn, torch, onnx, python")


def _canonical_datasets(ws: Any, refs: list[str]) -> list[str]:
    from forgeml.datasets.versions import get_dataset_version

    return [get_dataset_version(r, workspace=ws).ref for r in refs]


# ------------------------------------------------------------------ looking up
def version_number(db: Any, name: str, ref: int | str) -> int:
    """Turn a version, stage or alias reference into a version number."""
    known = persisted.version_numbers(db, name)
    if not known:
        raise unknown_name("model", name, persisted.model_names(db))
    text = str(ref).strip()
    if isinstance(ref, int) or re.fullmatch(r"v?\d+", text):
        number = int(text.lstrip("v"))
        if number not in known:
            raise NotFoundError(f"model {name!r} has no version {number}; versions: {', '.join(map(str, known))}")
        return number
    low = text.lower()
    if low == "latest":
        return known[-1]
    if low.upper() in STAGES:
        hit = persisted.newest_in_stage(db, name, low.upper())
        if hit is None:
            raise NotFoundError(f"model {name!r} has no version in {low.upper()}; promote one first")
        return hit
    found = persisted.alias_version(db, name, text)
    if found is None:
        aliases = [r["alias"] for r in persisted.aliases(db, name)]
        raise unknown_name(f"version reference of model {name!r}", text,
                           [*aliases, "latest", *(s.lower() for s in STAGES)])
    return found


def get_model_version(name: str, ref: int | str = "latest", workspace: Any = None) -> ModelVersion:
    """Return a version by number, stage name ("production") or alias ("champion")."""
    if workspace is None and (client := remote()) is not None:
        from forgeml.registry import remote as via_server

        return via_server.get_model_version(client, check_name(name), ref)
    ws = workspace_or_current(workspace)
    db = store(ws)
    number = version_number(db, check_name(name), ref)
    row = persisted.version_row(db, name, number)
    return from_row(row, [r["alias"] for r in persisted.aliases(db, name, number)])


def parse_uri(uri: str, require_ref: bool = False) -> tuple[str, str]:
    """Split ``name@ref`` (or ``models:/name/ref``) into name and ref: the one parser of model URIs.

    ``ref`` is a version, a stage or an alias; without one it is "latest", unless ``require_ref``
    (serving must know which version an endpoint follows).
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ValidationError(f"invalid model URI {uri!r}; write name@production, name@champion or name@3")
    uri = uri.strip()
    if uri.startswith("models:/"):
        name, _, ref = uri[len("models:/"):].partition("/")
    else:
        name, _, ref = uri.partition("@")
    if require_ref and not ref:
        raise ValidationError(f"model URI {uri!r} is not name@version, name@stage or name@alias "
                              "(for example fraud@production)")
    return check_name(name), ref or "latest"


def resolve(uri: str, workspace: Any = None) -> ModelVersion:
    """Resolve ``name@production`` / ``name@champion`` / ``name@3`` to its ModelVersion."""
    name, ref = parse_uri(uri)
    return get_model_version(name, ref, workspace=workspace)


def load_model(uri: str | ModelVersion, device: str | None = None, workspace: Any = None, **options: Any) -> Any:
    """Load a model version through its flavor's runtime; options override the runtime's settings."""
    ws = workspace_or_current(workspace)
    mv = uri if isinstance(uri, ModelVersion) else resolve(uri, workspace=ws)
    runtime = runtime_for(ws, mv.flavor, **options)
    loaded = runtime.load(model_folder(ws, mv.artifact_digest), device=device)
    from forgeml.registry.calibration import with_calibration

    loaded = with_calibration(loaded, mv, ws)
    loaded.model_version = mv
    return loaded


def list_models(workspace: Any = None) -> list[dict[str, Any]]:
    """Return one row per model: latest version and the version in production."""
    return persisted.model_summaries(store(workspace_or_current(workspace)))


def list_versions(name: str, workspace: Any = None) -> list[ModelVersion]:
    """Return every version of a model, oldest first."""
    ws = workspace_or_current(workspace)
    db = store(ws)
    rows = persisted.version_rows(db, check_name(name))
    if not rows:
        raise unknown_name("model", name, persisted.model_names(db))
    aliases: dict[int, list[str]] = {}
    for r in persisted.aliases(db, name):
        aliases.setdefault(r["version"], []).append(r["alias"])
    return [from_row(r, aliases.get(r["version"], [])) for r in rows]


def set_alias(name: str, alias: str, version: int | str, actor: str | None = None,
              workspace: Any = None) -> ModelVersion:
    """Point an alias (e.g. "champion") at a version, moving it if it pointed elsewhere."""
    ws = workspace_or_current(workspace)
    db = store(ws)
    if not isinstance(alias, str) or not _NAME.fullmatch(alias) or alias.lower() in RESERVED_REFS or alias.isdigit():
        raise ValidationError(f"invalid alias {alias!r}: use a name that is not a number, 'latest' or a stage")
    require("models.promote", model=check_name(name), workspace=ws, subject=f"models/{name}@{alias}")
    number = version_number(db, check_name(name), version)
    with db.transaction() as tx:
        old = persisted.alias_version(tx, name, alias)
        persisted.point_alias(tx, name, alias, number, time.time())
        audit(tx, actor or default_actor(), "model.alias", f"model:{name}@{number}",
              {"alias": alias, "from": old, "to": number})
        bump_generation(tx)
    return get_model_version(name, number, workspace=ws)


def delete_alias(name: str, alias: str, actor: str | None = None, workspace: Any = None) -> None:
    """Remove an alias."""
    ws = workspace_or_current(workspace)
    db = store(ws)
    require("models.promote", model=name, workspace=ws, subject=f"models/{name}@{alias}")
    with db.transaction() as tx:
        if not persisted.drop_alias(tx, name, alias):
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")
        audit(tx, actor or default_actor(), "model.alias_deleted", f"model:{name}", {"alias": alias})
        bump_generation(tx)
