"""Reading the files and strings a user hands forgeml (specs, suites, spaces, JSON options) without a traceback.

Every reader here turns what can go wrong with user-supplied text — a missing or unreadable file, a
binary or huge file, a syntax error, nesting deep enough to exhaust the parser, a document that is
a scalar where a table was expected — into one ValidationError naming the file or option.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forgeml.errors import ValidationError

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
_SUFFIXES = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}


def read_text_file(path: str | Path, what: str, limit: int = MAX_DOCUMENT_BYTES) -> str:
    """Return a UTF-8 text file's contents, or raise ValidationError saying why it cannot be read."""
    path = Path(path)
    try:
        if not path.is_file():
            raise ValidationError(f"{what} {str(path)!r} does not exist or is not a file")
        size = path.stat().st_size
        if size > limit:
            raise ValidationError(f"{what} {str(path)!r} is {size} bytes; the limit is {limit}")
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValidationError(f"{what} {str(path)!r} is not UTF-8 text (a binary file?): {e.reason} at byte "
                              f"{e.start}") from None
    except OSError as e:
        raise ValidationError(f"{what} {str(path)!r} cannot be read: {e.strerror or e}") from None


def parse_document(text: str, fmt: str, what: str, allow_list: bool = False) -> Any:
    """Parse TOML, YAML or JSON text that must hold a table (or a list, if allowed); raise ValidationError otherwise."""
    try:
        if fmt == "toml":
            import tomllib

            data: Any = tomllib.loads(text)
        elif fmt == "yaml":
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except RecursionError:
        raise ValidationError(f"{what} nests too deeply to read") from None
    except Exception as e:  # each parser has its own error type; all mean the same to the user
        raise ValidationError(f"{what} is not valid {fmt.upper()}: {e}") from e
    if data is None and fmt == "yaml":
        data = {}
    if not isinstance(data, dict) and not (allow_list and isinstance(data, list)):
        wanted = "a table of keys and values or a list" if allow_list else "a table of keys and values"
        raise ValidationError(f"{what} must hold {wanted}, got {type(data).__name__}")
    return data


def read_document(path: str | Path, what: str, default_format: str | None = None, allow_list: bool = False) -> Any:
    """Read a .toml, .yaml/.yml or .json file that must hold a table, with one-line errors for everything else."""
    path = Path(path)
    fmt = _SUFFIXES.get(path.suffix.lower(), default_format)
    if fmt is None:
        raise ValidationError(f"{what} {str(path)!r}: use .toml, .yaml, .yml or .json")
    return parse_document(read_text_file(path, what), fmt, f"{what} {str(path)!r}", allow_list)


def parse_json_value(text: str, what: str) -> Any:
    """Parse a JSON option value (any JSON type), with one-line errors for bad or too-deep JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValidationError(f"{what} nests too deeply to read") from None
    except ValueError as e:
        raise ValidationError(f"{what} is not valid JSON: {e}") from e


def read_table_file(path: str | Path, what: str) -> Any:
    """Read a .csv file or a Parquet file or folder into an Arrow table, with one-line errors for bad files."""
    import pyarrow as pa

    path = Path(path)
    try:
        if not str(path).strip() or not path.exists():
            raise ValidationError(f"{what} {str(path)!r} does not exist")
        if path.suffix.lower() == ".csv":
            import pyarrow.csv as pcsv

            return pcsv.read_csv(path)
        import pyarrow.parquet as pq

        return pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise ValidationError(f"{what} {str(path)!r} is not a readable CSV or Parquet file: {e}") from None
