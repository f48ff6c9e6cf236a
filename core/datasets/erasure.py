"""The datasets layer's part of ``forget``: snapshots holding a subject become new versions without it.

The old version's row stays (so references and lineage still resolve) but its bytes are purged from
the artifact store, and ``dataset_erasures`` records which version replaced it and under which
erasure; reading the old version says where its content went.
"""

from __future__ import annotations

import time
from typing import Any

from forgeml.contracts import Holding, Subject
from forgeml.datasets.schema import store
from forgeml.datasets.sources import schema_text, table_digest
from forgeml.datasets.versions import DatasetVersion, _from_row, store_version
from forgeml.pii.files import without_subject


def _live_versions(ws: Any, column: str) -> list[DatasetVersion]:
    """Return versions not yet erased whose schema has the column."""
    db = store(ws)
    erased = {(r["name"], r["version"]) for r in db.query("SELECT name, version FROM dataset_erasures")}
    out = []
    for row in db.query("SELECT * FROM dataset_versions ORDER BY name, version"):
        dv = _from_row(row)
        if (dv.name, dv.version) not in erased and any(f["name"] == column for f in dv.schema):
            out.append(dv)
    return out


def _snapshot(ws: Any, dv: DatasetVersion) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(ws.artifacts.get_bytes(dv.path)))


class DatasetEraser:
    """Replaces each dataset version holding a subject by a new version without the subject's rows."""

    name = "datasets"

    def __init__(self, workspace: Any):
        self.workspace = workspace

    def find_subject(self, subject: Subject) -> list[Holding]:
        """Return each live dataset version holding rows of the subject."""
        found = []
        for dv in _live_versions(self.workspace, subject.column):
            rows = without_subject(_snapshot(self.workspace, dv), subject)[1]
            if rows:
                found.append(Holding(self.name, dv.ref, rows))
        return found

    def erase_subject(self, subject: Subject) -> list[Holding]:
        """Register each cleaned snapshot as a new version, record the erasure, purge the old bytes."""
        ws = self.workspace
        removed: list[Holding] = []
        purge: set[str] = set()
        for dv in _live_versions(ws, subject.column):
            kept, rows = without_subject(_snapshot(ws, dv), subject)
            if not rows:
                continue
            digest = _content_digest(kept)
            tags = {**dv.tags, "erasure_of": dv.ref, "erasure": subject.erasure}
            version, _ = store_version(ws, dv.name, kept, digest, dv.schema, "erasure", f"{dv.ref} less one subject",
                                       [], dv.description, tags)
            with store(ws).transaction() as tx:
                tx.insert_or_ignore("dataset_erasures",
                                    ("name", "version", "replaced_by", "erasure", "rows_removed", "at"),
                                    [(dv.name, dv.version, version, subject.erasure, rows, time.time())])
            purge.add(dv.path)
            purge.update(f["digest"] for f in dv.files)
            removed.append(Holding(self.name, f"{dv.ref} -> {dv.name}@v{version}", rows))
        if purge:
            from forgeml.pii.purge import purge_objects

            purge_objects(ws, purge - _still_referenced(ws))
        return removed


def _content_digest(table: Any) -> str:
    import hashlib

    return hashlib.sha256((schema_text(table.schema) + "\n" + table_digest(table)).encode()).hexdigest()


def _still_referenced(ws: Any) -> set[str]:
    """Return the digests that versions not erased still read."""
    db = store(ws)
    erased = {(r["name"], r["version"]) for r in db.query("SELECT name, version FROM dataset_erasures")}
    digests: set[str] = set()
    for row in db.query("SELECT * FROM dataset_versions"):
        dv = _from_row(row)
        if (dv.name, dv.version) not in erased:
            digests.add(dv.path)
            digests.update(f["digest"] for f in dv.files)
    return digests


def erasures_of(ws: Any, dv: DatasetVersion) -> list[dict[str, Any]]:
    """Return the erasures that replaced this version or made it, for its lineage."""
    db = store(ws)
    rows = db.query("SELECT name, version, replaced_by, erasure, rows_removed, at FROM dataset_erasures"
                    " WHERE name = ? AND (version = ? OR replaced_by = ?) ORDER BY at", (dv.name, dv.version, dv.version))
    return [{"erasure": r["erasure"], "replaced": f"{r['name']}@v{r['version']}",
             "by": f"{r['name']}@v{r['replaced_by']}", "rows_removed": r["rows_removed"], "at": r["at"]}
            for r in rows]


def erased_note(ws: Any, dv: DatasetVersion) -> str:
    """Return why a version's bytes are gone ("" when it was never erased)."""
    for e in erasures_of(ws, dv):
        if e["replaced"] == dv.ref:
            return (f"was erased (erasure {e['erasure']} removed {e['rows_removed']} rows of a forgotten subject); "
                    f"read {e['by']}")
    return ""
