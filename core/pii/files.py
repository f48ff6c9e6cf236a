"""Rewriting tables without a data subject's rows: the piece every file-backed eraser shares."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from forgeml.contracts import Subject


def without_subject(table: Any, subject: Subject) -> tuple[Any, int]:
    """Return an Arrow table without the subject's rows (nulls kept) and how many rows were dropped."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if subject.column not in table.column_names:
        return table, 0
    text = pc.cast(table.column(subject.column), pa.string())
    keep = pc.fill_null(pc.not_equal(text, pa.scalar(subject.value, pa.string())), True)
    kept = table.filter(keep)
    return kept, table.num_rows - kept.num_rows


def read_parquet(path: Path, keyring: Any = None, columns: list[str] | None = None) -> Any:
    """Read a local Parquet file that may be encrypted at rest (forgeml.pii.encryption)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from forgeml.pii.encryption import HEADER, decrypt_bytes, is_sealed

    with open(path, "rb") as f:
        sealed = is_sealed(f.read(HEADER))
    if not sealed:
        return pq.read_table(path, columns=columns)
    if keyring is None:
        from forgeml.errors import ConfigError

        raise ConfigError(f"{path} is encrypted at rest; turn on [privacy] encrypt_at_rest with its key to read it")
    return pq.read_table(pa.BufferReader(decrypt_bytes(path.read_bytes(), keyring, str(path))), columns=columns)


def write_parquet(table: Any, path: Path, keyring: Any = None) -> None:
    """Write a Parquet file atomically (a temporary name, then a rename), encrypted when a keyring is given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        if keyring is None:
            pq.write_table(table, tmp, row_group_size=1_000_000)
        else:
            from forgeml.pii.encryption import encrypt_bytes

            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, row_group_size=1_000_000)
            tmp.write_bytes(encrypt_bytes(sink.getvalue().to_pybytes(), keyring))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def subject_rows(path: Path, subject: Subject, keyring: Any = None) -> int:
    """Return how many rows of a local Parquet file belong to the subject (a plain file: one column read)."""
    import pyarrow.parquet as pq

    from forgeml.pii.encryption import HEADER, is_sealed

    with open(path, "rb") as f:
        sealed = is_sealed(f.read(HEADER))
    if not sealed:
        if subject.column not in pq.read_schema(path).names:
            return 0
        return without_subject(pq.read_table(path, columns=[subject.column]), subject)[1]
    return without_subject(read_parquet(path, keyring), subject)[1]


def rewrite_parquet(path: Path, subject: Subject, keyring: Any = None) -> int:
    """Rewrite a local Parquet file without the subject's rows, atomically; return the rows removed.

    The new file is written beside the old one and renamed over it, so a reader sees the old file or
    the new one, never a half-written one; a file left empty is removed.
    """
    kept, removed = without_subject(read_parquet(path, keyring), subject)
    if not removed:
        return 0
    if kept.num_rows == 0:
        path.unlink()
    else:
        write_parquet(kept, path, keyring)
    return removed
