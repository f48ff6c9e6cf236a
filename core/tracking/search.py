"""Compile a parsed search query to one parameterized SQL statement and build the result DataFrame."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from forgeml.errors import NotFoundError, did_you_mean
from forgeml.tracking.query import (
    And,
    Between,
    Compare,
    Field,
    In,
    IsNull,
    Like,
    Literal,
    Not,
    Or,
    Query,
    parse_query,
)

if TYPE_CHECKING:
    import pandas as pd

    from forgeml.tracking.store import TrackingStore

_ATTR_SQL = {
    "id": "r.id", "run_id": "r.id", "name": "r.name", "experiment": "r.experiment", "status": "r.status",
    "start_time": "r.start_time", "end_time": "r.end_time", "duration": "(r.end_time - r.start_time)",
    "parent_id": "r.parent_id", "job_id": "r.job_id",
}
_TABLES = {"params": ("tracking_params", "p"), "metrics": ("tracking_latest_metrics", "m"),
           "tags": ("tracking_tags", "t")}
_SNAPSHOT_ORDER = ("params", "metrics", "tags")
RUN_FIELDS = ["run_id", "name", "experiment", "status", "start_time", "end_time", "parent_id", "job_id"]


@dataclass
class CompiledQuery:
    """SQL selecting matching run rows in order, and its parameters."""

    sql: str
    params: list[Any] = field(default_factory=list)


def required_fields(where: Any) -> list[Field]:
    """Return the key/value fields every match must have: those of top-level conditions that reject NULL."""
    conjuncts = where.items if isinstance(where, And) else (where,) if where is not None else ()
    found: list[Field] = []
    for node in conjuncts:
        if isinstance(node, Compare | Between | In | Like) or isinstance(node, IsNull) and node.negated:
            if node.field.kind != "attr" and all((f.kind, f.key) != (node.field.kind, node.field.key) for f in found):
                found.append(node.field)
    return found


class _Compiler:
    def __init__(self, required: list[Field]) -> None:
        self.aliases: dict[tuple[str, str], str] = {}
        self.from_sql: list[str] = []
        self.from_params: list[Any] = []
        self.first_key: list[Any] = []
        # Fields every match must have are inner-joined first, in query order, so the first one's
        # (key, value) index drives the search and runs are only read for rows that pass the filters.
        for f in required:
            table, alias = self._new_alias(f)
            if not self.from_sql:
                self.from_sql.append(f"{table} {alias}")
                self.first_key.append(f.key)
                self.driver = alias
            else:
                self.from_sql.append(f"JOIN {table} {alias} ON {alias}.run = {self.driver}.run AND {alias}.key = ?")
                self.from_params.append(f.key)
        self.from_sql.append(f"JOIN tracking_runs r ON r.seq = {self.driver}.run" if required else "tracking_runs r")

    def _new_alias(self, f: Field) -> tuple[str, str]:
        table, letter = _TABLES[f.kind]
        alias = f"{letter}{len(self.aliases)}"
        self.aliases[(f.kind, f.key)] = alias
        return table, alias

    def alias(self, f: Field) -> str:
        key = (f.kind, f.key)
        if key not in self.aliases:
            # a LEFT JOIN keeps runs lacking the key (for OR, NOT, IS NULL)
            table, alias = self._new_alias(f)
            self.from_sql.append(f"LEFT JOIN {table} {alias} ON {alias}.run = r.seq AND {alias}.key = ?")
            self.from_params.append(f.key)
        return self.aliases[key]

    def column(self, f: Field, numeric: bool) -> str:
        if f.kind == "attr":
            return _ATTR_SQL[f.key]
        alias = self.alias(f)
        if f.kind == "params":
            return f"{alias}.num" if numeric else f"{alias}.value"
        return f"{alias}.value"

    def cond(self, node: Any, out: list[Any]) -> str:
        if isinstance(node, And | Or):
            joiner = " AND " if isinstance(node, And) else " OR "
            return "(" + joiner.join(self.cond(item, out) for item in node.items) + ")"
        if isinstance(node, Not):
            return f"NOT {self.cond(node.item, out)}"
        if isinstance(node, Compare):
            out.append(node.value.value)
            return f"{self.column(node.field, node.value.is_number)} {node.op} ?"
        if isinstance(node, Between):
            out.extend([node.low.value, node.high.value])
            neg = "NOT " if node.negated else ""
            return f"{self.column(node.field, node.low.is_number)} {neg}BETWEEN ? AND ?"
        if isinstance(node, In):
            return self.in_list(node, out)
        if isinstance(node, Like):
            # LIKE ignores ASCII case, as SQLite's does; PostgreSQL's would not, so both sides are lowered
            out.append(str(node.pattern.value).lower())
            neg = "NOT " if node.negated else ""
            return f"LOWER({self.column(node.field, False)}) {neg}LIKE ?"
        if isinstance(node, IsNull):
            return f"{self.column(node.field, False)} IS {'NOT ' if node.negated else ''}NULL"
        raise TypeError(f"unknown query node {node!r}")

    def in_list(self, node: In, out: list[Any]) -> str:
        groups: dict[bool, list[Literal]] = {True: [], False: []}
        for lit in node.values:
            groups[lit.is_number].append(lit)
        parts = []
        for numeric, lits in groups.items():
            if lits:
                out.extend(lit.value for lit in lits)
                parts.append(f"{self.column(node.field, numeric)} IN ({', '.join('?' * len(lits))})")
        sql = parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
        return f"NOT {sql}" if node.negated else sql

    def order(self, query: Query) -> list[str]:
        terms = []
        for item in query.order_by:
            direction = "DESC" if item.descending else "ASC"
            if item.field.kind == "params":
                terms.append(f"{self.column(item.field, True)} {direction} NULLS LAST")
            terms.append(f"{self.column(item.field, False)} {direction} NULLS LAST")
        if not query.order_by:
            terms.append("r.start_time DESC")
        terms.append("r.id")
        return terms


def compile_query(query: Query, include_deleted: bool = False, experiments: Sequence[str] | None = None,
                  limit: int | None = None) -> CompiledQuery:
    """Compile a query AST to SQL that returns the matching run rows, sorted and limited."""
    c = _Compiler(required_fields(query.where))
    where_params: list[Any] = []
    conditions = []
    if c.first_key:
        conditions.append(f"{c.driver}.key = ?")
        where_params.extend(c.first_key)
    if not include_deleted:
        conditions.append("r.deleted = 0")
    if experiments:
        conditions.append(f"r.experiment IN ({', '.join('?' * len(experiments))})")
        where_params.extend(experiments)
    if query.where is not None:
        conditions.append(c.cond(query.where, where_params))
    order = c.order(query)
    # each matching run's params, metrics and tags come from the JSON snapshots on its row
    sql = ("SELECT r.id AS run_id, r.name, r.experiment, r.status, r.start_time, r.end_time, r.parent_id, r.job_id, "
           f"r.params_json, r.metrics_json, r.tags_json FROM {' '.join(c.from_sql)}")
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    sql += " ORDER BY " + ", ".join(order)
    limits = [n for n in (query.limit, limit) if n is not None]
    params = [*c.from_params, *where_params]
    if limits:
        sql += " LIMIT ?"
        params.append(min(limits))
    return CompiledQuery(sql, params)


def referenced_fields(query: Query) -> list[Field]:
    """Return the param, metric and tag fields a query names, in order, each once."""
    found: dict[tuple[str, str], Field] = {}

    def walk(node: Any) -> None:
        if isinstance(node, And | Or):
            for item in node.items:
                walk(item)
        elif isinstance(node, Not):
            walk(node.item)
        elif node is not None and node.field.kind != "attr":
            found.setdefault((node.field.kind, node.field.key), node.field)

    walk(query.where)
    for item in query.order_by:
        if item.field.kind != "attr":
            found.setdefault((item.field.kind, item.field.key), item.field)
    return list(found.values())


def check_keys(store: TrackingStore, query: Query, fields: Sequence[Field]) -> None:
    """Raise NotFoundError naming a param, metric or tag of the query that no run has, with a did-you-mean."""
    for f in fields:
        if f.kind == "attr" or store.has_key(f.kind, f.key):
            continue
        known = store.keys(f.kind)
        shown = ", ".join(known[:12]) + (f" and {len(known) - 12} more" if len(known) > 12 else "")
        singular = f.kind.rstrip("s")
        listed = f"known {f.kind}: {shown}" if known else f"no run has any {singular}"
        raise NotFoundError(f"no run has the {singular} {f.key!r}{did_you_mean(f.key, known)}; {listed}")


def search(store: TrackingStore, query: str = "", include_deleted: bool = False,
           experiments: Sequence[str] | None = None, limit: int | None = None) -> pd.DataFrame:
    """Run a query and return one row per run: attributes, then params.*, metrics.*, tags.* columns."""
    import numpy as np
    import pandas as pd

    parsed = parse_query(query or "")
    compiled = compile_query(parsed, include_deleted, experiments, limit)
    rows = store.search_rows(compiled.sql, compiled.params)
    # a key no run has makes an empty result or a meaningless order: say so rather than return it
    check_keys(store, parsed, referenced_fields(parsed) if not rows else [i.field for i in parsed.order_by])
    n = len(rows)
    first = len(RUN_FIELDS)
    # one json.loads for every snapshot of every row: far cheaper than a call per snapshot
    snapshots = json.loads("[" + ",".join(blob for row in rows for blob in row[first:]) + "]") if rows else []
    found: dict[str, dict[str, list[Any]]] = {"params": {}, "metrics": {}, "tags": {}}
    for index, values in enumerate(snapshots):
        if values:
            table = found[_SNAPSHOT_ORDER[index % 3]]
            i = index // 3
            for key, value in values.items():
                col = table.get(key)
                if col is None:
                    col = table[key] = [None] * n
                col[i] = value
    attrs = {name: [r[i] for r in rows] for i, name in enumerate(RUN_FIELDS)}
    times = {name: pd.DatetimeIndex((np.array(attrs.pop(name), dtype="float64") * 1e6).astype("datetime64[us]"))
             .tz_localize("UTC") for name in ("start_time", "end_time")}
    params = {f"params.{key}": found["params"][key] for key in sorted(found["params"])}
    metrics = {f"metrics.{key}": np.array(found["metrics"][key], dtype="float64") for key in sorted(found["metrics"])}
    tags = {f"tags.{key}": found["tags"][key] for key in sorted(found["tags"])}
    head = {k: attrs[k] for k in RUN_FIELDS[:4]}
    tail = {k: attrs[k] for k in RUN_FIELDS[6:]}
    # object dtype skips pandas' per-column string inference, which costs more than the query itself
    parts = [pd.DataFrame(head, dtype=object), pd.DataFrame(times), pd.DataFrame(tail, dtype=object)]
    parts += [pd.DataFrame(params, dtype=object, index=range(n)), pd.DataFrame(metrics, index=range(n)),
              pd.DataFrame(tags, dtype=object, index=range(n))]
    return pd.concat(parts, axis=1)
