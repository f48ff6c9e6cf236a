"""Which columns hold personal data, as the kernel knows it: a PII list per layer in the ``kv`` table.

The layers that tag columns (feature definitions, datasets) publish their whole current list with
:func:`publish_pii` whenever it may change; readers (serving's prediction log, run artifacts,
alerts) union those lists with ``[privacy] pii_columns``. Readers thereby need no import of the
layers that declare the tags, and one small read answers them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from forgeml.errors import ValidationError

KEY_PREFIX = "pii.columns."
TABLE_SUFFIXES = (".parquet", ".pq", ".csv")


def publish_pii(tx: Any, layer: str, columns: Iterable[str]) -> None:
    """Store the complete list of PII columns a layer declares, inside the caller's transaction."""
    tx.execute("INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?)"
               " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
               (KEY_PREFIX + layer, json.dumps(sorted(set(columns))), time.time()))


def pii_columns(workspace: Any) -> set[str]:
    """Return every column tagged PII in this workspace: tags every layer published plus [privacy] pii_columns."""
    names = set(workspace.config.section("privacy").pii_columns)
    rows = workspace.metadata.query("SELECT value FROM kv WHERE substr(key, 1, ?) = ?", (len(KEY_PREFIX), KEY_PREFIX))
    for row in rows:
        names.update(json.loads(row["value"]))
    return names


def kept_out(workspace: Any) -> frozenset[str]:
    """Return the PII columns that must not reach logs, artifacts and alerts (empty when log_pii allows them)."""
    if workspace.config.section("privacy").log_pii:
        return frozenset()
    return frozenset(pii_columns(workspace))


def refuse_pii(workspace: Any, columns: Iterable[str], where: str) -> None:
    """Raise a ValidationError when columns include PII that [privacy] does not allow in ``where``."""
    found = sorted(set(columns) & kept_out(workspace))
    if found:
        raise ValidationError(f"{where} holds PII column{'s' if len(found) > 1 else ''} {', '.join(found)}; "
                              f"drop or tokenize {'them' if len(found) > 1 else 'it'} (forgeml.privacy.tokenize), "
                              f"or allow PII there with [privacy] log_pii = true")


def refuse_pii_in_file(workspace: Any, path: Path, where: str) -> None:
    """Refuse a Parquet or CSV file whose columns include PII that [privacy] keeps out of artifacts."""
    if not path.name.lower().endswith(TABLE_SUFFIXES):
        return
    blocked = kept_out(workspace)
    if not blocked:
        return
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    try:
        if path.name.lower().endswith(".csv"):
            with pcsv.open_csv(path) as reader:
                names = reader.schema.names
        else:
            names = pq.read_schema(path).names
    except pa.ArrowException:
        return  # not a readable table: nothing columnar to refuse
    refuse_pii(workspace, names, where)


# what a result about a PII column may keep: figures about its distribution, never its values
_SUMMARY_KEYS = frozenset({"column", "test", "statistic", "p_value", "effect_size", "drifted", "severity", "kind",
                           "threshold", "rows", "count", "nulls"})
REDACTED = "[pii]"


def redact(value: Any, columns: frozenset[str] | set[str]) -> Any:
    """Return JSON-like data with the values of PII columns taken out (for alerts and notifications).

    A mapping keyed by a PII column name loses that entry's contents; a mapping describing a PII
    column (``"column": name``) keeps only summary figures such as its statistic and p-value.
    """
    if not columns:
        return value
    if isinstance(value, dict):
        if value.get("column") in columns:
            return {k: v for k, v in value.items() if k in _SUMMARY_KEYS and not isinstance(v, dict | list)}
        return {k: REDACTED if k in columns else redact(v, columns) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, columns) for v in value]
    return value
