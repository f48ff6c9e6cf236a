"""Every query of the labeling layer, in portable SQL, behind small functions the services call."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from forgeml.labeling.schema import store

RECORD_COLUMNS = ("label_set", "item_key", "label", "source_kind", "source", "confidence", "labelled_at")


def insert_label_set(ws: Any, name: str, dataset: str, key: str, classes: Sequence[str], description: str) -> bool:
    """Store a new label set; return False when one of that name exists."""
    with store(ws).transaction() as tx:
        return tx.insert_or_ignore("label_sets", ("name", "dataset", "key", "classes", "description", "created_at"),
                                   [(name, dataset, key, json.dumps(list(classes)), description, time.time())]) == 1


def label_set_row(ws: Any, name: str) -> dict[str, Any] | None:
    """Return a label set's row, or None."""
    rows = store(ws).query("SELECT * FROM label_sets WHERE name = ?", (name,))
    return rows[0] if rows else None


def label_set_names(ws: Any) -> list[str]:
    """Return every label set's name, sorted."""
    return [r["name"] for r in store(ws).query("SELECT name FROM label_sets ORDER BY name")]


def label_set_summaries(ws: Any) -> list[dict[str, Any]]:
    """Return each label set with its item and record counts."""
    return store(ws).query(
        "SELECT s.name, s.dataset, s.key, s.classes, s.created_at, COUNT(r.id) AS records,"
        " COUNT(DISTINCT r.item_key) AS items FROM label_sets s LEFT JOIN label_records r ON r.label_set = s.name"
        " GROUP BY s.name, s.dataset, s.key, s.classes, s.created_at ORDER BY s.name")


def upsert_records(ws: Any, rows: Sequence[Sequence[Any]]) -> int:
    """Write label records; a record for the same item and source replaces the earlier one."""
    if not rows:
        return 0
    with store(ws).transaction() as tx:
        return tx.upsert("label_records", RECORD_COLUMNS, rows, keys=("label_set", "item_key", "source_kind", "source"))


def records(ws: Any, label_set: str, kinds: Sequence[str] | None = None) -> list[tuple[Any, ...]]:
    """Return a label set's records as tuples in RECORD_COLUMNS order minus label_set, oldest first."""
    sql = ("SELECT item_key, label, source_kind, source, confidence, labelled_at FROM label_records"
           " WHERE label_set = ?")
    params: list[Any] = [label_set]
    if kinds:
        sql += f" AND source_kind IN ({', '.join('?' for _ in kinds)})"
        params.extend(kinds)
    return store(ws).rows(sql + " ORDER BY labelled_at, id", params)


def labelled_keys(ws: Any, label_set: str, kinds: Sequence[str]) -> set[str]:
    """Return the keys that have a record of one of the given kinds."""
    rows = store(ws).rows(
        f"SELECT DISTINCT item_key FROM label_records WHERE label_set = ? AND source_kind IN "
        f"({', '.join('?' for _ in kinds)})", [label_set, *kinds])
    return {r[0] for r in rows}


def project(ws: Any, label_set: str, backend: str) -> dict[str, Any] | None:
    """Return the backend project made for a label set, or None."""
    rows = store(ws).query("SELECT * FROM label_projects WHERE label_set = ? AND backend = ?", (label_set, backend))
    return rows[0] if rows else None


def save_project(ws: Any, label_set: str, backend: str, project_id: str) -> None:
    """Remember the project a backend made for a label set."""
    with store(ws).transaction() as tx:
        tx.insert_or_ignore("label_projects", ("label_set", "backend", "project", "cursor", "created_at"),
                            [(label_set, backend, project_id, None, time.time())])


def save_pull(ws: Any, label_set: str, backend: str, cursor: str | None, rows: Sequence[Sequence[Any]]) -> int:
    """Store pulled annotations and the cursor after them in one transaction, so a crash repeats a pull whole."""
    with store(ws).transaction() as tx:
        written = tx.upsert("label_records", RECORD_COLUMNS, rows,
                            keys=("label_set", "item_key", "source_kind", "source")) if rows else 0
        tx.execute("UPDATE label_projects SET cursor = ? WHERE label_set = ? AND backend = ?",
                   (cursor, label_set, backend))
    return written


def sent_keys(ws: Any, label_set: str, backend: str) -> set[str]:
    """Return the keys already sent to a backend for a label set."""
    rows = store(ws).rows("SELECT item_key FROM label_sent WHERE label_set = ? AND backend = ?", (label_set, backend))
    return {r[0] for r in rows}


def mark_sent(ws: Any, label_set: str, backend: str, strategy: str, keys: Sequence[str]) -> None:
    """Record the keys sent to a backend."""
    now = time.time()
    with store(ws).transaction() as tx:
        tx.insert_or_ignore("label_sent", ("label_set", "item_key", "backend", "strategy", "sent_at"),
                            [(label_set, k, backend, strategy, now) for k in keys])
