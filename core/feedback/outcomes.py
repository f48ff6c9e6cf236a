"""Outcomes that arrive after the prediction: labels and events joined to requests by request id.

An outcome is (request_id, name, value, time): ``label`` with the true value, or an event such as
``purchase`` with a value (1 for a plain event, the amount for revenue). They are stored in the
metadata store, so any process (serving, a batch import, the HTTP API) may add them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forgeml.errors import ValidationError
from forgeml.feedback import schema

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
COLUMNS = ("request_id", "name", "value", "time")


def _ws(workspace: Any) -> Any:
    if workspace is not None:
        return workspace
    from forgeml.workspace import current

    return current()


def _seconds(value: Any, where: str) -> float:
    """Turn None (now), epoch seconds, a datetime or an ISO string into UTC epoch seconds."""
    if value is None:
        return datetime.now(UTC).timestamp()
    if isinstance(value, bool):
        raise ValidationError(f"{where}: time must be a datetime, an ISO string or epoch seconds, not a bool")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValidationError(f"{where}: time {value!r} is not a finite number")
        return float(value)
    from forgeml.times import to_utc_micros

    try:
        return float(to_utc_micros(value)) / 1e6  # type: ignore[arg-type]
    except (ValidationError, ValueError, TypeError) as e:
        raise ValidationError(f"{where}: time {value!r} is not a datetime, an ISO 8601 string "
                              "with a zone (e.g. 2026-12-07T14:00:00Z) or epoch seconds") from e


def check_outcome(request_id: Any, name: Any, value: Any, time: Any, where: str = "outcome") -> tuple[
        str, str, float | None, float]:
    """Validate one outcome and return it as (request_id, name, value, epoch seconds)."""
    if not isinstance(request_id, str | int) or isinstance(request_id, bool) or not str(request_id).strip():
        raise ValidationError(f"{where}: request_id must be the non-empty id a prediction answered with")
    if len(str(request_id)) > 200:
        raise ValidationError(f"{where}: request_id is longer than 200 characters")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(f"{where}: outcome name {name!r} must be a word such as 'label' or 'purchase'")
    if value is not None:
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise ValidationError(f"{where}: value {value!r} must be a finite number")
    return str(request_id), name, None if value is None else float(value), _seconds(time, where)


def log_outcome(request_id: str, name: str = "label", value: float | None = 1.0, time: Any = None,
                workspace: Any = None) -> None:
    """Record one late outcome of a served request: a label's true value or an event and its value."""
    row = check_outcome(request_id, name, value, time)
    schema.insert_outcomes(_ws(workspace), [row])


def log_outcomes(rows: Sequence[Mapping[str, Any]], workspace: Any = None) -> int:
    """Record many outcomes given as mappings with request_id, name, value and time; return how many."""
    checked = [check_outcome(r.get("request_id"), r.get("name", "label"), r.get("value", 1.0), r.get("time"),
                             f"outcome #{i + 1}") for i, r in enumerate(rows)]
    return schema.insert_outcomes(_ws(workspace), checked)


def import_outcomes(path: str | Path, name: str | None = None, workspace: Any = None,
                    chunk_rows: int = 50_000) -> int:
    """Import outcomes from a CSV, Parquet or JSON-lines file (columns request_id, name, value, time)."""
    import pyarrow as pa

    p = Path(path)
    if not p.is_file():
        raise ValidationError(f"no outcomes file {str(path)!r}")
    try:
        table = _read_table(p)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise ValidationError(f"{p.name}: cannot read outcomes: {str(e).splitlines()[0][:200]}") from e
    cols = set(table.column_names)
    if "request_id" not in cols:
        raise ValidationError(f"{p.name}: outcomes need a request_id column; it has {', '.join(sorted(cols))}")
    if "name" not in cols and name is None:
        raise ValidationError(f"{p.name}: give a name column or --name (e.g. --name label)")
    ws = _ws(workspace)
    total = 0
    for start in range(0, table.num_rows, chunk_rows):
        part = table.slice(start, chunk_rows).to_pydict()
        n = len(part["request_id"])
        names = part.get("name") or [name] * n
        values = part.get("value") or [1.0] * n
        times = part.get("time") or [None] * n
        rows = [check_outcome(part["request_id"][i], names[i], values[i], times[i], f"{p.name} row {start + i + 2}")
                for i in range(n)]
        total += schema.insert_outcomes(ws, rows)
    return total


def _read_table(p: Path) -> Any:
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(p)
    if suffix in (".jsonl", ".json", ".ndjson"):
        import pyarrow.json as pj

        return pj.read_json(p)
    if suffix in (".csv", ".tsv", ".txt"):
        import pyarrow.csv as pc

        # ids stay text even when they look like numbers
        return pc.read_csv(p, convert_options=pc.ConvertOptions(column_types={"request_id": "string",
                                                                              "name": "string"}),
                           parse_options=pc.ParseOptions(delimiter="\t" if suffix == ".tsv" else ","))
    raise ValidationError(f"{p.name}: outcomes files are .csv, .tsv, .parquet or .jsonl")


def read_outcomes(names: Sequence[str], since: Any = None, workspace: Any = None) -> Any:
    """Return the named outcomes as a DataFrame (request_id, name, value, at as epoch seconds)."""
    import pandas as pd

    lo = None if since is None else _seconds(since, "since")
    rows = schema.outcomes_for(_ws(workspace), list(names), lo)
    return pd.DataFrame(rows, columns=["request_id", "name", "value", "at"])
