"""Precomputed candidate lists built from an interaction log: co-occurrence, popularity and top items per category.

Each builder reads interactions (``user``, ``item``, ``ts`` columns; Arrow or pandas) with DuckDB and
returns an Arrow table ready to push into an online feature view, so a scheduled pipeline can refresh
the lists the co-occurrence, popularity and content sources read.
"""

from __future__ import annotations

import re
from typing import Any

from forgeml.errors import ValidationError

COLUMNS = ("user", "item", "ts")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _ident(*names: str) -> None:
    """Column names are written into the SQL, so only plain identifiers are accepted."""
    for name in names:
        if not isinstance(name, str) or not _IDENT.fullmatch(name):
            raise ValidationError(f"column name {name!r} must be letters, digits and '_'")


def _relation(con: Any, interactions: Any) -> None:
    import pyarrow as pa

    table = interactions if isinstance(interactions, pa.Table) else pa.Table.from_pandas(interactions,
                                                                                          preserve_index=False)
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise ValidationError(f"interactions lack column {missing[0]!r}; they need user, item and ts")
    con.register("interactions", table.select(list(COLUMNS)))


def _run(sql: str, interactions: Any, params: list[Any]) -> Any:
    import duckdb

    con = duckdb.connect()
    try:
        _relation(con, interactions)
        return con.sql(sql, params=params).fetch_arrow_table()
    finally:
        con.close()


def cooccurrence_lists(interactions: Any, top: int = 20, window: int = 5, key: str = "item_id",
                       column: str = "also_bought") -> Any:
    """Return, per item, the items most often interacted with within ``window`` steps of it by the same user."""
    _ident(key, column)
    sql = f"""
        WITH s AS (SELECT user, item, row_number() OVER (PARTITION BY user ORDER BY ts, item) AS pos
                   FROM interactions),
             pairs AS (SELECT a.item AS item, b.item AS other, count(*) AS n
                       FROM s a JOIN s b ON a.user = b.user AND a.item <> b.item AND abs(a.pos - b.pos) <= ?
                       GROUP BY 1, 2),
             ranked AS (SELECT item, other, n FROM pairs
                        QUALIFY row_number() OVER (PARTITION BY item ORDER BY n DESC, other) <= ?)
        SELECT item AS "{key}", list(other ORDER BY n DESC, other) AS "{column}" FROM ranked GROUP BY item
        ORDER BY item
    """
    return _run(sql, interactions, [window, top])


def popularity_list(interactions: Any, top: int = 1000, half_life_days: float = 7.0, segment: str = "all",
                    key: str = "segment", column: str = "top_items") -> Any:
    """Return one row: the ``top`` items by interactions, each weighted 0.5 ** (age / half_life) from the newest."""
    _ident(key, column)
    sql = f"""
        WITH w AS (SELECT item, sum(pow(0.5, epoch(max_ts - ts) / 86400.0 / ?)) AS score
                   FROM interactions, (SELECT max(ts) AS max_ts FROM interactions) GROUP BY item),
             ranked AS (SELECT item, score FROM w ORDER BY score DESC, item LIMIT ?)
        SELECT ? AS "{key}", list(item ORDER BY score DESC, item) AS "{column}" FROM ranked
    """
    return _run(sql, interactions, [half_life_days, top, segment])


def top_by_value(items: Any, value: str, score: str, top: int = 200, key: str = "item_id",
                 value_key: str = "category_id", column: str = "category_items") -> Any:
    """Return, per value of an item attribute (a category), its ``top`` items by ``score``."""
    import duckdb
    import pyarrow as pa

    _ident(key, value, score, value_key, column)
    table = items if isinstance(items, pa.Table) else pa.Table.from_pandas(items, preserve_index=False)
    for name in (key, value, score):
        if name not in table.column_names:
            raise ValidationError(f"items lack column {name!r}")
    con = duckdb.connect()
    try:
        con.register("items", table)
        return con.sql(f"""
            WITH ranked AS (SELECT "{value}" AS v, "{key}" AS item, "{score}" AS s FROM items
                            QUALIFY row_number() OVER (PARTITION BY "{value}" ORDER BY "{score}" DESC, "{key}") <= ?)
            SELECT v AS "{value_key}", list(item ORDER BY s DESC, item) AS "{column}" FROM ranked GROUP BY v ORDER BY v
        """, params=[top]).fetch_arrow_table()
    finally:
        con.close()
