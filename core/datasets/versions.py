"""Immutable, content-addressed dataset versions snapshotted into the artifact store."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forgeml.datasets.schema import store
from forgeml.datasets.sources import load_source, schema_text
from forgeml.errors import ForgeError, NotFoundError, ValidationError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass
class DatasetVersion:
    """One immutable version of a named dataset."""

    name: str
    version: int
    digest: str
    schema: list[dict[str, Any]]
    num_rows: int
    path: str  # the snapshot's artifact digest; read it with read_dataset
    num_bytes: int = 0
    source_kind: str = ""
    source: str = ""
    files: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0

    @property
    def ref(self) -> str:
        """Return the canonical reference, ``name@vN``."""
        return f"{self.name}@v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """Return plain values for JSON output."""
        out = asdict(self)
        out["ref"] = self.ref
        return out


def _workspace(workspace: Any) -> Any:
    if workspace is not None:
        return workspace
    from forgeml.workspace import current

    return current()


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(
            f"invalid dataset name {name!r}: use letters, digits, '_', '-' and '.', starting with a letter or digit"
        )
    return name


def _from_row(row: dict[str, Any]) -> DatasetVersion:
    return DatasetVersion(
        name=row["name"], version=row["version"], digest=row["digest"], schema=json.loads(row["schema"]),
        num_rows=row["num_rows"], path=row["data_digest"], num_bytes=row["num_bytes"],
        source_kind=row["source_kind"], source=row["source"], files=json.loads(row["files"]),
        description=row["description"], tags=json.loads(row["tags"]), created_at=row["created_at"],
    )


def _schema_fields(schema: Any, pii: set[str] | frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable, **({"pii": True} if f.name in pii else {})}
            for f in schema]


def store_version(ws: Any, name: str, table: Any, digest: str, schema: list[dict[str, Any]], kind: str,
                  source: str, files: list[dict[str, Any]], description: str, tags: dict[str, str],
                  originals: list[bytes] = ()) -> tuple[int, bool]:
    """Snapshot a table as the next version of a dataset; return (version, whether it is new).

    Content already registered under the name returns that version instead.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    db = store(ws)
    existing = db.query("SELECT version FROM dataset_versions WHERE name = ? AND digest = ?", (name, digest))
    if existing:
        return existing[0]["version"], False
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    snapshot = sink.getvalue().to_pybytes()
    data_digest = ws.artifacts.put_bytes(snapshot)
    for original in originals:
        ws.artifacts.put_bytes(original)  # the original bytes too, so restore_files gives them back exactly
    with db.transaction() as tx:
        again = tx.query("SELECT version FROM dataset_versions WHERE name = ? AND digest = ?", (name, digest))
        if again:
            return again[0]["version"], False
        version = tx.query("SELECT COALESCE(MAX(version), 0) + 1 AS v FROM dataset_versions WHERE name = ?",
                           (name,))[0]["v"]
        tx.execute(
            "INSERT INTO dataset_versions (name, version, digest, data_digest, schema, num_rows, num_bytes,"
            " source_kind, source, files, description, tags, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (name, version, digest, data_digest, json.dumps(schema), table.num_rows, len(snapshot), kind, source,
             json.dumps(files), description, json.dumps(tags), time.time()),
        )
        if any(f.get("pii") for f in schema):
            from forgeml.pii.tags import publish_pii

            tagged = {f["name"] for row in tx.query("SELECT schema FROM dataset_versions")
                      for f in json.loads(row["schema"]) if f.get("pii")}
            publish_pii(tx, "datasets", tagged)
    return version, True


def _pii_list(pii: list[str] | None, names: list[str]) -> set[str]:
    unknown = [c for c in pii or () if c not in names]
    if unknown:
        raise ValidationError(f"pii column {unknown[0]!r} is not in the dataset; columns: {', '.join(names)}")
    return set(pii or ())


def register_dataset(name: str, source: Any = None, *, query: str | None = None, fmt: str | None = None,
                     description: str = "", tags: dict[str, str] | None = None, pii: list[str] | None = None,
                     workspace: Any = None) -> DatasetVersion:
    """Snapshot a source as a new version of a dataset; identical content returns the existing version.

    ``pii`` names the columns holding personal data (marked in ``datasets show``, kept out of logs).
    """
    ws = _workspace(workspace)
    _check_name(name)
    loaded = load_source(source, query=query, root=ws.root, fmt=fmt)
    table = loaded.table
    h = hashlib.sha256()
    h.update(schema_text(table.schema).encode())
    for line in loaded.content:
        h.update(b"\n" + line.encode())
    digest = h.hexdigest()
    files = []
    for f in loaded.files:
        files.append({k: f[k] for k in ("path", "digest", "size")})
    schema = _schema_fields(table.schema, _pii_list(pii, table.schema.names))
    version, created = store_version(ws, name, table, digest, schema, loaded.kind, loaded.description, files,
                                     description, tags or {}, originals=[f["bytes"] for f in loaded.files])
    if not created:
        return get_dataset_version(f"{name}@v{version}", workspace=ws)
    dv = get_dataset_version(f"{name}@v{version}", workspace=ws)
    ws.plugins.on_dataset_version_registered(dataset_version=dv, workspace=ws)
    return dv


def parse_ref(ref: str) -> tuple[str, str | None]:
    """Split ``name@v3`` / ``name@<hash prefix>`` / ``name`` into name and selector."""
    if not isinstance(ref, str) or not ref:
        raise ValidationError(f"invalid dataset reference {ref!r}; write name@v3, name@<hash prefix> or name")
    name, _, selector = ref.partition("@")
    _check_name(name)
    return name, (selector or None)


def get_dataset_version(ref: str, workspace: Any = None) -> DatasetVersion:
    """Return the version a reference names (``name@v3``, ``name@3``, ``name@latest``, ``name@<hash>``)."""
    ws = _workspace(workspace)
    db = store(ws)
    name, selector = parse_ref(ref)
    versions = db.query("SELECT version, digest FROM dataset_versions WHERE name = ? ORDER BY version", (name,))
    if not versions:
        names = [r["name"] for r in db.query("SELECT DISTINCT name FROM dataset_versions")]
        from forgeml.errors import unknown_name

        raise unknown_name("dataset", name, names, "read_dataset")
    if selector is None or selector == "latest":
        version = versions[-1]["version"]
    elif re.fullmatch(r"v?\d+", selector) and not (len(selector) >= 6 and selector.isdigit()):
        version = int(selector.lstrip("v"))
        if version not in {r["version"] for r in versions}:
            raise NotFoundError(f"dataset {name!r} has no version {version}; versions: "
                                f"{', '.join('v' + str(r['version']) for r in versions)}")
    elif re.fullmatch(r"[0-9a-f]{6,64}", selector):
        hits = [r for r in versions if r["digest"].startswith(selector)]
        if not hits:
            raise NotFoundError(f"dataset {name!r} has no version whose hash starts with {selector!r}")
        if len(hits) > 1:
            raise ValidationError(f"hash prefix {selector!r} matches several versions of {name!r}; give more digits")
        version = hits[0]["version"]
    else:
        raise ValidationError(f"invalid dataset selector {selector!r} in {ref!r}; use v3, latest or a hash "
                              "prefix of at least 6 hex digits")
    row = db.query("SELECT * FROM dataset_versions WHERE name = ? AND version = ?", (name, version))[0]
    return _from_row(row)


def read_dataset(ref: str | DatasetVersion, columns: list[str] | None = None, workspace: Any = None) -> Any:
    """Return a dataset version's rows, exactly as they were registered, as a pyarrow Table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ws = _workspace(workspace)
    dv = ref if isinstance(ref, DatasetVersion) else get_dataset_version(ref, workspace=ws)
    try:
        data = ws.artifacts.get_bytes(dv.path)
    except NotFoundError:
        from forgeml.datasets.erasure import erased_note

        note = erased_note(ws, dv)
        if note:
            raise NotFoundError(f"{dv.ref} {note}") from None
        raise
    try:
        return pq.read_table(pa.BufferReader(data), columns=columns)
    except (pa.ArrowInvalid, KeyError) as e:
        raise ValidationError(f"cannot read columns {columns} of {dv.ref}: {e}") from e


def restore_files(ref: str, dest: str | Path, workspace: Any = None) -> list[Path]:
    """Write a file-sourced version's original files, byte for byte, under dest."""
    ws = _workspace(workspace)
    dv = get_dataset_version(ref, workspace=ws)
    if not dv.files:
        raise ValidationError(f"{dv.ref} was registered from a {dv.source_kind}, not files; use read_dataset")
    out = []
    for f in dv.files:
        target = Path(dest) / f["path"]
        out.append(ws.artifacts.get_file(f["digest"], target))
    return out


def list_datasets(workspace: Any = None) -> list[dict[str, Any]]:
    """Return one row per dataset name with its latest version."""
    db = store(_workspace(workspace))
    return db.query(
        "SELECT name, MAX(version) AS latest, COUNT(*) AS versions, MAX(created_at) AS updated_at"
        " FROM dataset_versions GROUP BY name ORDER BY name"
    )


def list_versions(name: str, workspace: Any = None) -> list[DatasetVersion]:
    """Return every version of a dataset, oldest first."""
    db = store(_workspace(workspace))
    rows = db.query("SELECT * FROM dataset_versions WHERE name = ? ORDER BY version", (_check_name(name),))
    return [_from_row(r) for r in rows]


def previous_version(dv: DatasetVersion, workspace: Any = None) -> DatasetVersion | None:
    """Return the version registered just before dv, or None for the first."""
    db = store(_workspace(workspace))
    rows = db.query("SELECT * FROM dataset_versions WHERE name = ? AND version < ? ORDER BY version DESC LIMIT 1",
                    (dv.name, dv.version))
    return _from_row(rows[0]) if rows else None


def record_use(ref: str, run_id: str, workspace: Any = None) -> DatasetVersion:
    """Record that a run read a dataset version (tracking's log_input calls this)."""
    ws = _workspace(workspace)
    dv = get_dataset_version(ref, workspace=ws)
    with store(ws).transaction() as tx:
        tx.insert_or_ignore("dataset_usage", ("name", "version", "run_id", "used_at"),
                            [(dv.name, dv.version, str(run_id), time.time())])
    return dv


def lineage(ref: str, workspace: Any = None) -> dict[str, Any]:
    """Return where a version came from and which runs and model versions used it."""
    ws = _workspace(workspace)
    dv = get_dataset_version(ref, workspace=ws)
    runs = store(ws).query("SELECT run_id, used_at FROM dataset_usage WHERE name = ? AND version = ? ORDER BY used_at",
                           (dv.name, dv.version))
    models: list[str] = []
    # the other layers' tables exist once their migration sets ran in this workspace
    if ws.metadata.applied_migrations("tracking"):
        # runs that called tracking's log_input(dataset=...) with any reference to this version
        seen = {r["run_id"] for r in runs}
        from forgeml.tracking.store import tracking_store

        rows = tracking_store(ws).runs_with_input("dataset", dv.name)
        for row in rows:
            try:
                same = get_dataset_version(row["ref"], workspace=ws).version == dv.version
            except ForgeError:
                continue  # a reference that no longer resolves names no version of ours
            if same and row["run_id"] not in seen:
                seen.add(row["run_id"])
                runs.append({"run_id": row["run_id"], "used_at": row["used_at"]})
    if ws.metadata.applied_migrations("registry"):
        from forgeml.layers import model_versions

        for row in model_versions(ws.metadata, "name", "version", "datasets"):
            if dv.ref in json.loads(row["datasets"] or "[]"):
                models.append(f"{row['name']}@{row['version']}")
    from forgeml.datasets.erasure import erasures_of

    return {"dataset": dv.ref, "digest": dv.digest, "source_kind": dv.source_kind, "source": dv.source,
            "files": dv.files, "runs": runs, "models": models, "erasures": erasures_of(ws, dv)}


def diff(old_ref: str, new_ref: str, workspace: Any = None) -> dict[str, Any]:
    """Compare two versions: schema changes, row counts, and per-column null and mean changes."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ws = _workspace(workspace)
    a, b = get_dataset_version(old_ref, workspace=ws), get_dataset_version(new_ref, workspace=ws)
    sa = {f["name"]: f["type"] for f in a.schema}
    sb = {f["name"]: f["type"] for f in b.schema}
    ta, tb = read_dataset(a, workspace=ws), read_dataset(b, workspace=ws)
    columns = []
    for col in [c for c in sb if c in sa]:
        entry: dict[str, Any] = {"column": col, "nulls": [ta[col].null_count, tb[col].null_count]}
        if sa[col] != sb[col]:
            entry["type"] = [sa[col], sb[col]]
        if all(pa.types.is_integer(t[col].type) or pa.types.is_floating(t[col].type) for t in (ta, tb)):
            entry["mean"] = [pc.mean(ta[col]).as_py(), pc.mean(tb[col]).as_py()]
        columns.append(entry)
    return {
        "old": a.ref, "new": b.ref,
        "rows": [a.num_rows, b.num_rows],
        "added_columns": [c for c in sb if c not in sa],
        "removed_columns": [c for c in sa if c not in sb],
        "changed_types": {c: [sa[c], sb[c]] for c in sa if c in sb and sa[c] != sb[c]},
        "columns": columns,
        "same_content": a.digest == b.digest,
    }
