"""Index upkeep for recommenders: compact the embedding tables and refresh the precomputed lists.

LanceDB appends a fragment per write and leaves rows written after an index was built outside it
until asked; ``compact_embedding_tables`` asks (compaction, index update, old versions dropped) for
every table a registered embedding version names. ``refresh_lists`` recomputes the popularity and
co-occurrence lists from an interaction log and pushes them online. Both are plain functions, run by
the ``recsys_upkeep`` pipeline of :mod:`forgeml.plugins.recsys.upkeep` on a cron trigger.
"""

from __future__ import annotations

from typing import Any

from forgeml.recsys.embeddings import TABLE_TAG, USER_TABLE_TAG


def embedding_tables(workspace: Any, include_archived: bool = False) -> list[str]:
    """Return the vector-store tables named by registered embedding versions (newest first)."""
    from forgeml.registry import list_models, list_versions

    tables: list[str] = []
    for model in list_models(workspace=workspace):
        for mv in list_versions(model["name"], workspace=workspace):
            if mv.stage == "ARCHIVED" and not include_archived:
                continue
            for tag in (TABLE_TAG, USER_TABLE_TAG):
                table = (mv.tags or {}).get(tag)
                if table and table not in tables:
                    tables.append(table)
    return tables


def compact_embedding_tables(workspace: Any = None, keep_versions_s: float = 3600.0,
                             tables: list[str] | None = None) -> list[dict[str, Any]]:
    """Compact and re-index every registered embedding table (or the ones given); return one report each.

    Table versions younger than ``keep_versions_s`` are kept, so a request reading one while the
    upkeep runs is never cut off.
    """
    from forgeml.registry.models import workspace_or_current

    ws = workspace_or_current(workspace)
    store = ws.vector_store
    return [store.optimize(t, keep_versions_s) for t in (tables if tables is not None else embedding_tables(ws))
            if store.count(t)]


def refresh_lists(interactions: Any, workspace: Any = None, popularity_view: str = "popular",
                  cooccurrence_view: str = "item_cooc", top: int = 1000, neighbours: int = 20) -> dict[str, int]:
    """Recompute the popularity and co-occurrence lists from interactions and push them online; return rows."""
    import time

    import pyarrow as pa

    from forgeml.features import store_for
    from forgeml.recsys.lists import cooccurrence_lists, popularity_list
    from forgeml.registry.models import workspace_or_current

    store = store_for(workspace_or_current(workspace))
    stamp = pa.scalar(int(time.time() * 1e6), pa.timestamp("us", tz="UTC"))
    out = {}
    for view, table in ((popularity_view, popularity_list(interactions, top=top)),
                        (cooccurrence_view, cooccurrence_lists(interactions, top=neighbours))):
        stamped = table.append_column("event_timestamp", pa.array([stamp.value] * table.num_rows, stamp.type))
        out[view] = store.push(view, stamped, to="online")
    return out
