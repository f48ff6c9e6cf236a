"""Dead letters: events that cannot be cast to their window view's schema, set aside with the reason.

A stream processor must not stop at one malformed record (its supervisor would restart it onto the
same record forever), so a batch that fails to conform is split in halves until the records at
fault are alone; those are appended to ``.forgeml/streams/VIEW.dead.jsonl`` — one JSON object per
record with the reason, its stream position and when — and the rest is applied. The file is
written and flushed before the offsets are committed, so a crash in between writes the same record
again on replay; positions already present are skipped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from forgeml.contracts import Holding, Subject
from forgeml.errors import ValidationError

Dead = tuple[dict[str, Any], str]  # (the record as it arrived, why it could not be cast)
ERROR = "_error"  # a polled record's decoding error (StreamConsumer.poll), null for one that decoded


def dead_letter_path(workspace: Any, view: str) -> Path:
    """Return the file holding a view's dead letters."""
    return workspace.dot / "streams" / f"{view}.dead.jsonl"


def split_castable(view: Any, records: Any, where: str) -> tuple[Any, list[Dead]]:
    """Return (the conformed records that cast, in their order, or None; the records that do not, with why)."""
    import pyarrow as pa

    from forgeml.features.window_offline import event_columns
    from forgeml.features.window_online import conform_events

    bad: list[Dead] = []
    if ERROR in records.column_names:  # records the stream could not decode, with why
        import pyarrow.compute as pc

        errors = records.column(ERROR)
        undecoded = records.filter(pc.is_valid(errors))
        for row, reason in zip(undecoded.drop_columns([ERROR]).to_pylist(), undecoded.column(ERROR).to_pylist()):
            bad.append((row, f"{where}: {reason}"))
        records = records.filter(pc.is_null(errors)).drop_columns([ERROR])
    missing = [c for c in event_columns(view) if c not in records.column_names]
    if missing:  # no record of the batch can be applied: say so once, for all of them
        reason = f"{where}: record lacks column {missing[0]!r} (needed: {', '.join(event_columns(view))})"
        return None, [*bad, *((row, reason) for row in records.to_pylist())]
    good: list[Any] = []

    def visit(part: Any) -> None:
        try:
            good.append(conform_events(view, part, where))
        except ValidationError as e:
            if part.num_rows == 1:
                bad.append((part.to_pylist()[0], str(e)))
                return
            half = part.num_rows // 2
            visit(part.slice(0, half))
            visit(part.slice(half))

    if records.num_rows:
        visit(records)
    if bad and all(row.get("_offset") is not None for row, _ in bad):
        bad.sort(key=lambda dead: (str(dead[0].get("_partition")), dead[0]["_offset"]))  # stream order
    return (pa.concat_tables(good) if good else None), bad


class DeadLetters:
    """Appends a view's dead letters, skipping stream positions it already holds (a replay after a crash)."""

    def __init__(self, workspace: Any, view: str):
        self.view = view
        self.path = dead_letter_path(workspace, view)
        self._held: set[tuple[str, int]] | None = None

    def _positions(self) -> set[tuple[str, int]]:
        if self._held is None:
            self._held = {(r["partition"], r["offset"]) for r in read_dead_letters(self.path)
                          if r.get("partition") is not None}
        return self._held

    def write(self, source: str, dead: list[Dead]) -> int:
        """Append records with their reasons (flushed to disk); return how many were new."""
        with _locked(self.path):
            return self._write(source, dead)

    def _write(self, source: str, dead: list[Dead]) -> int:
        held = self._positions()
        lines = []
        now = time.time()
        for record, reason in dead:
            partition, offset = record.pop("_partition", None), record.pop("_offset", None)
            if partition is not None and (partition, offset) in held:
                continue
            if partition is not None:
                held.add((partition, offset))
            lines.append(json.dumps({"view": self.view, "source": source, "partition": partition, "offset": offset,
                                     "reason": reason, "at": now, "record": record}, default=str) + "\n")
        if lines:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if _ends_torn(self.path):
                lines.insert(0, "\n")  # keep a line cut short by a crash apart from the new ones
            with open(self.path, "a", encoding="utf-8") as out:
                out.write("".join(lines))
                out.flush()
                os.fsync(out.fileno())
        return len(lines)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the view's dead-letter lock: an erasure rewrites the file while a stream process may append."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class DeadLetterEraser:
    """The dead letters' part of ``forget``: records set aside as they arrived hold subjects' keys too."""

    name = "dead_letters"

    def __init__(self, workspace: Any):
        self.root = workspace.dot / "streams"

    def _files(self) -> list[Path]:
        return sorted(self.root.glob("*.dead.jsonl")) if self.root.is_dir() else []

    @staticmethod
    def _holds(row: dict[str, Any], subject: Subject) -> bool:
        record = row.get("record")
        return isinstance(record, dict) and subject.column in record and str(record[subject.column]) == subject.value

    def find_subject(self, subject: Subject) -> list[Holding]:
        """Return each view's dead-letter file holding records of the subject."""
        found = []
        for path in self._files():
            rows = sum(self._holds(r, subject) for r in read_dead_letters(path))
            if rows:
                found.append(Holding(self.name, path.name, rows))
        return found

    def erase_subject(self, subject: Subject) -> list[Holding]:
        """Rewrite each dead-letter file without the subject's records (a torn last line goes too)."""
        removed = []
        for path in self._files():
            with _locked(path):
                rows = read_dead_letters(path)
                keep = [r for r in rows if not self._holds(r, subject)]
                if len(keep) == len(rows):
                    continue
                tmp = path.with_name(path.name + ".tmp")
                with open(tmp, "w", encoding="utf-8") as out:
                    out.write("".join(json.dumps(r, default=str) + "\n" for r in keep))
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
                dir_fd = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
                removed.append(Holding(self.name, path.name, len(rows) - len(keep)))
        return removed


def _ends_torn(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:  # missing or empty
        return False


def read_dead_letters(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Return the dead letters in a file, oldest first (the newest ``limit`` when given; a torn last line skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash mid-append; its record is written again on replay
    return rows[-limit:] if limit else rows
