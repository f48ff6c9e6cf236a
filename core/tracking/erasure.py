"""Tracking's part of ``forget``: run artifacts that are tables (Parquet, CSV) lose a subject's rows."""

from __future__ import annotations

from typing import Any

from forgeml.contracts import Holding, Subject
from forgeml.pii.files import without_subject

TABLE_SUFFIXES = (".parquet", ".pq", ".csv")


def read_table_bytes(data: bytes, path: str) -> Any:
    """Parse an artifact's bytes as an Arrow table by its file name."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if path.lower().endswith(".csv"):
        return pcsv.read_csv(pa.BufferReader(data))
    return pq.read_table(pa.BufferReader(data))


def _table_bytes(table: Any, path: str) -> bytes:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    if path.lower().endswith(".csv"):
        pcsv.write_csv(table, sink)
    else:
        pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


class RunArtifactEraser:
    """Rewrites run artifacts that are tables without a subject's rows and purges the old bytes."""

    name = "run_artifacts"

    def __init__(self, workspace: Any):
        self.workspace = workspace

    def _tables(self) -> list[dict[str, Any]]:
        ws = self.workspace
        if not ws.metadata.applied_migrations("tracking"):
            return []
        from forgeml.tracking.store import tracking_store

        rows = tracking_store(ws).all_artifacts()
        return [r for r in rows if r["path"].lower().endswith(TABLE_SUFFIXES)]

    def _hits(self, subject: Subject) -> list[tuple[dict[str, Any], Any, int]]:
        import pyarrow as pa

        out = []
        for row in self._tables():
            try:
                table = read_table_bytes(self.workspace.artifacts.get_bytes(row["digest"]), row["path"])
            except (pa.ArrowException, OSError):
                continue  # not a table after all (a file merely named .csv): nothing to search
            kept, removed = without_subject(table, subject)
            if removed:
                out.append((row, kept, removed))
        return out

    def find_subject(self, subject: Subject) -> list[Holding]:
        """Return each table artifact of a run holding rows of the subject."""
        return [Holding(self.name, f"{row['run_id']}/{row['path']}", n) for row, _, n in self._hits(subject)]

    def erase_subject(self, subject: Subject) -> list[Holding]:
        """Store each cleaned table as the artifact's new content and purge the old object."""
        from forgeml.pii.purge import purge_objects
        from forgeml.tracking.store import tracking_store

        ws = self.workspace
        removed, old = [], set()
        for row, kept, n in self._hits(subject):
            data = _table_bytes(kept, row["path"])
            digest = ws.artifacts.put_bytes(data)
            tracking_store(ws).replace_artifact(row["run"], row["path"], digest, len(data))
            old.add(row["digest"])
            removed.append(Holding(self.name, f"{row['run_id']}/{row['path']}", n))
        if old:
            still = tracking_store(ws).artifact_digests()
            purge_objects(ws, old - still)
        return removed
