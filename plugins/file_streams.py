"""A folder of Parquet or CSV files as an event stream: tail it live, or replay and backfill from it.

Each file is one partition and a record's offset is its row number in the file. Files are
immutable once they appear under their final name (``publish`` writes a hidden temporary file and
renames it); names starting with ``.`` or ``_`` are ignored. Each consumer group keeps its
committed offsets in ``_offsets/GROUP.json`` inside the folder, replaced atomically on commit.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeml import hookimpl
from forgeml.config import setting

OFFSETS = "_offsets"


@dataclass
class FileStreamSettings:
    """Settings of a folder-of-files event stream."""

    path: str = setting("", "The folder, relative to the workspace root (created when missing).")
    format: str = setting("parquet", "File format of published files: parquet or csv (both are read).")
    poll_interval_s: float = setting(0.05, "How often an idle consumer looks for new files.")


class FolderEventStream:
    """Files in one folder, read in name order; publish writes one new file per call."""

    def __init__(self, folder: str | Path, file_format: str = "parquet", poll_interval_s: float = 0.05):
        from forgeml.errors import ConfigError, StorageError

        if file_format not in ("parquet", "csv"):
            raise ConfigError(f"file stream: format must be parquet or csv, got {file_format!r}")
        self.folder = Path(folder)
        self.format = file_format
        self.poll_interval_s = poll_interval_s
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"file stream {str(self.folder)!r}: cannot create the folder: {e.strerror}") from e

    def files(self) -> list[str]:
        """Return the visible data files, oldest name first."""
        return sorted(p.name for p in self.folder.iterdir()
                      if p.is_file() and not p.name.startswith((".", "_")) and p.suffix in (".parquet", ".csv"))

    def publish(self, rows: Any) -> int:
        """Write rows as one new file (named by time, so files sort in publish order)."""
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        from forgeml.errors import StorageError

        if rows.num_rows == 0:
            return 0
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.{self.format}"
        tmp = self.folder / f".{name}.tmp"
        try:
            if self.format == "parquet":
                pq.write_table(rows, tmp)
            else:
                pcsv.write_csv(rows, tmp)
            os.replace(tmp, self.folder / name)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"file stream {str(self.folder)!r}: cannot write {name}: {e}") from e
        return rows.num_rows

    def read(self, name: str) -> Any:
        """Return a file's rows as an Arrow table."""
        import pyarrow as pa
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        from forgeml.errors import StorageError

        path = self.folder / name
        try:
            return pq.read_table(path) if name.endswith(".parquet") else pcsv.read_csv(path)
        except (OSError, pa.ArrowException) as e:
            raise StorageError(f"file stream: cannot read {str(path)!r}: {e}") from e

    def _subject_hits(self, subject: Any) -> list[tuple[str, Any, Any]]:
        """Return (file, rows, mask of the subject's rows) for each file holding the subject."""
        import pyarrow as pa
        import pyarrow.compute as pc

        hits = []
        for name in self.files():
            table = self.read(name)
            if subject.column not in table.column_names:
                continue
            text = pc.cast(table.column(subject.column), pa.string())
            mask = pc.fill_null(pc.equal(text, pa.scalar(subject.value, pa.string())), False)
            if pc.any(mask).as_py():
                hits.append((name, table, mask))
        return hits

    def find_subject(self, subject: Any) -> list[Any]:
        """Return each file holding events of the subject."""
        import pyarrow.compute as pc

        from forgeml.contracts import Holding

        return [Holding("stream", f"{self.folder.name}/{name}", pc.sum(mask).as_py())
                for name, _, mask in self._subject_hits(subject)]

    def erase_subject(self, subject: Any) -> list[Any]:
        """Blank every value of the subject's events in place (rows stay, so consumers' offsets still hold)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        from forgeml.contracts import Holding

        removed = []
        for name, table, mask in self._subject_hits(subject):
            blanked = pa.table({c: pc.if_else(mask, pa.scalar(None, table.column(c).type), table.column(c))
                                for c in table.column_names})
            tmp = self.folder / f".{name}.{uuid.uuid4().hex}.tmp"
            try:
                if name.endswith(".parquet"):
                    pq.write_table(blanked, tmp)
                else:
                    pcsv.write_csv(blanked, tmp)
                os.replace(tmp, self.folder / name)
            finally:
                tmp.unlink(missing_ok=True)
            removed.append(Holding("stream", f"{self.folder.name}/{name}", pc.sum(mask).as_py()))
        return removed

    def consumer(self, group: str) -> FolderConsumer:
        """Open a consumer group's cursor."""
        from forgeml.features.definitions import check_name

        return FolderConsumer(self, check_name("consumer group", group))

    def close(self) -> None:
        """Nothing to release."""


class FolderConsumer:
    """A group's cursor over the folder: committed offsets on disk, delivered ones in memory."""

    def __init__(self, stream: FolderEventStream, group: str):
        self.stream = stream
        self.path = stream.folder / OFFSETS / f"{group}.json"
        self._committed = self._load()
        self._next = {name: offset + 1 for name, offset in self._committed.items()}
        self._tables: dict[str, Any] = {}
        self._rows: dict[str, int] = {}

    def _load(self) -> dict[str, int]:
        from forgeml.errors import StorageError

        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            raise StorageError(f"file stream: committed offsets {str(self.path)!r} are unreadable ({e}); "
                               f"delete the file to start the group again from the beginning") from e
        return {str(k): int(v) for k, v in data.items()}

    def poll(self, max_records: int, timeout_s: float) -> Any:
        """Return rows not yet delivered, file by file in name order, plus _partition and _offset."""
        import pyarrow as pa

        deadline = time.monotonic() + timeout_s
        while True:
            parts = []
            budget = max_records
            for name in self.stream.files():
                start = self._next.get(name, 0)
                if start >= self._rows.get(name, start + 1):
                    continue  # files never change once visible: this one is fully delivered
                table = self._tables.get(name)
                if table is None:
                    table = self.stream.read(name)
                    self._rows[name] = table.num_rows
                if start >= table.num_rows:
                    self._tables.pop(name, None)
                    continue
                self._tables[name] = table
                chunk = table.slice(start, budget)
                parts.append(chunk.append_column("_partition", pa.array([name] * chunk.num_rows, pa.string()))
                             .append_column("_offset", pa.array(range(start, start + chunk.num_rows), pa.int64())))
                self._next[name] = start + chunk.num_rows
                budget -= chunk.num_rows
                if budget <= 0:
                    break
            if parts:
                return pa.concat_tables(parts, promote_options="permissive")
            if time.monotonic() >= deadline:
                return pa.table({"_partition": pa.array([], pa.string()), "_offset": pa.array([], pa.int64())})
            time.sleep(min(self.stream.poll_interval_s, max(0.0, deadline - time.monotonic())))

    def commit(self, positions: Mapping[str, int]) -> None:
        """Record the offsets durably (write, fsync, rename)."""
        from forgeml.errors import StorageError

        self._committed.update({str(k): int(v) for k, v in positions.items()})
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(exist_ok=True)
            with open(tmp, "w") as f:
                json.dump(self._committed, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            raise StorageError(f"file stream: cannot commit offsets to {str(self.path)!r}: {e.strerror}") from e

    def committed(self) -> dict[str, int]:
        """Return the committed offset per file."""
        return dict(self._committed)

    def close(self) -> None:
        """Forget cached file contents."""
        self._tables.clear()


def _folder_stream(settings: FileStreamSettings, workspace: Any) -> FolderEventStream:
    from forgeml.errors import ConfigError

    if not settings.path:
        raise ConfigError("a file stream needs path = \"FOLDER\" in its [streams.NAME] table")
    return FolderEventStream(workspace.resolve(settings.path), settings.format, settings.poll_interval_s)


@hookimpl
def forgeml_register_stream_sources(register):
    """Offer the folder-of-files stream."""
    register("files", _folder_stream, settings=FileStreamSettings,
             description="Parquet or CSV files in a folder, tailed in name order")
