"""Where dataset versions come from: files or folders on any fsspec URL, a DuckDB query, or a table."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeml.errors import NotFoundError, ValidationError

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "csv", ".json": "json",
           ".jsonl": "json", ".ndjson": "json", ".arrow": "ipc", ".feather": "ipc", ".ipc": "ipc"}


@dataclass
class LoadedSource:
    """A source read into memory: its table, what it was, and the files it came from."""

    table: Any  # pyarrow.Table
    kind: str  # "files", "query", "table"
    description: str
    files: list[dict[str, Any]] = field(default_factory=list)  # {path, digest, size}
    content: list[str] = field(default_factory=list)  # what the version digest covers besides the schema


def schema_text(schema: Any) -> str:
    """Return a stable text form of an Arrow schema (field names, types, nullability)."""
    return ";".join(f"{f.name}:{f.type}:{'null' if f.nullable else 'notnull'}" for f in schema)


def table_digest(table: Any) -> str:
    """Return the sha256 of a table's Arrow IPC stream, a content hash independent of file formats."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks() if table.num_rows else table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def _read_one(fs: Any, path: str, fmt: str) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson
    import pyarrow.parquet as pq

    with fs.open(path, "rb") as f:
        data = f.read()
    buf = pa.BufferReader(data)
    try:
        if fmt == "parquet":
            return pq.read_table(buf), data
        if fmt == "csv":
            opts = pcsv.ParseOptions(delimiter="\t") if path.endswith(".tsv") else None
            return pcsv.read_csv(buf, parse_options=opts), data
        if fmt == "json":
            return pjson.read_json(buf), data
        return pa.ipc.open_file(buf).read_all(), data
    except (pa.ArrowInvalid, OSError) as e:
        raise ValidationError(f"cannot read {path!r} as {fmt}: {e}") from e


def load_files(url: str, fmt: str | None = None) -> LoadedSource:
    """Read a file, a folder (every supported file under it, sorted) or a glob on any fsspec URL."""
    import fsspec
    import pyarrow as pa

    try:
        fs, base = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:
        raise ValidationError(f"dataset source {url!r}: {e}") from e
    if any(c in base for c in "*?["):
        paths = sorted(p for p in fs.glob(base) if fs.isfile(p))
        root = base.split("*")[0].rsplit("/", 1)[0]
    elif fs.isdir(base):
        paths = sorted(p for p in fs.find(base) if Path(p).suffix.lower() in FORMATS)
        root = base.rstrip("/")
    elif fs.exists(base):
        paths, root = [base], base.rsplit("/", 1)[0]
    else:
        raise NotFoundError(f"dataset source {url!r} does not exist; give a file, a folder or a glob")
    if not paths:
        raise NotFoundError(f"dataset source {url!r} holds no readable files ({', '.join(sorted(FORMATS))})")
    tables, files, content = [], [], []
    for path in paths:
        kind = fmt or FORMATS.get(Path(path).suffix.lower())
        if kind is None:
            raise ValidationError(f"cannot tell the format of {path!r}; pass fmt= one of parquet, csv, json, ipc")
        table, data = _read_one(fs, path, kind)
        rel = path[len(root):].lstrip("/") if path.startswith(root) else path
        digest = hashlib.sha256(data).hexdigest()
        files.append({"path": rel, "digest": digest, "size": len(data), "bytes": data})
        content.append(f"{rel}\t{digest}")
        tables.append(table)
    try:
        table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ValidationError(f"files under {url!r} do not share one schema: {e}") from e
    return LoadedSource(table, "files", url, files, content)


def load_query(sql: str, root: Path | None = None) -> LoadedSource:
    """Run a DuckDB query (relative file paths resolve from the workspace root) and read its result."""
    import duckdb

    # relative paths resolve through DuckDB's file_search_path, not the process's working directory,
    # which other threads share
    config = {"file_search_path": str(root)} if root is not None else {}
    try:
        con = duckdb.connect(config=config)
        try:
            relation = con.sql(sql)
            if relation is None:  # a statement without a result (SET, CREATE, ...)
                raise ValidationError(f"dataset query {sql[:80]!r} returns no table: give a SELECT")
            table = relation.fetch_arrow_table()
        finally:
            con.close()
    except duckdb.Error as e:
        raise ValidationError(f"dataset query failed: {e}") from e
    return LoadedSource(table, "query", sql, [], [table_digest(table)])


def load_table(data: Any) -> LoadedSource:
    """Take an Arrow table, record batch or pandas DataFrame (e.g. a point-in-time feature join)."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    elif type(data).__name__ == "DataFrame" and hasattr(data, "to_records"):
        table = pa.Table.from_pandas(data, preserve_index=False)
    else:
        raise ValidationError(
            f"cannot make a dataset from {type(data).__name__}; give a path or URL, query=..., "
            "a pyarrow Table or a pandas DataFrame"
        )
    table = _plain_strings(table.replace_schema_metadata(None))
    return LoadedSource(table, "table", f"{type(data).__name__} with {table.num_rows} rows", [],
                        [table_digest(table)])


def _plain_strings(table: Any) -> Any:
    """Store large/view strings as plain strings so a DataFrame and its Arrow table hash the same."""
    import pyarrow as pa

    fields = []
    for f in table.schema:
        if pa.types.is_large_string(f.type) or pa.types.is_string_view(f.type):
            f = f.with_type(pa.string())
        elif pa.types.is_large_binary(f.type) or pa.types.is_binary_view(f.type):
            f = f.with_type(pa.binary())
        fields.append(f)
    schema = pa.schema(fields)
    return table if schema.equals(table.schema) else table.cast(schema)


def load_source(source: Any = None, query: str | None = None, root: Path | None = None,
                fmt: str | None = None) -> LoadedSource:
    """Read whichever kind of source was given."""
    if query is not None:
        if source is not None:
            raise ValidationError("give either a source or query=..., not both")
        return load_query(query, root)
    if source is None:
        raise ValidationError("no dataset source given: pass a path or URL, query=..., or a table")
    if isinstance(source, str | Path):
        url = str(source)
        if "://" not in url and root is not None and not Path(url).is_absolute():
            url = str(root / url)
        return load_files(url, fmt)
    return load_table(source)
