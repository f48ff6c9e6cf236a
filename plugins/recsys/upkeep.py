"""The ``recsys_upkeep`` pipeline: compact the embedding tables and, given an interaction log, refresh the lists.

Add it to a workspace with ``[pipelines] modules = ["forgeml.plugins.recsys.upkeep"]`` and a
``[[pipelines.triggers]]`` table with ``pipeline = "recsys_upkeep"`` and a cron expression.
"""

from __future__ import annotations

from typing import Any

from forgeml.pipelines import pipeline, step


@step(cache=False, retries=1)
def compact(keep_versions_s: float) -> list[dict[str, Any]]:
    """Compact and re-index every registered embedding table."""
    from forgeml.recsys.upkeep import compact_embedding_tables

    return compact_embedding_tables(keep_versions_s=keep_versions_s)


@step(cache=False)
def refresh(interactions: str) -> dict[str, int]:
    """Recompute popularity and co-occurrence lists from a Parquet interaction log (user, item, ts)."""
    import pyarrow.parquet as pq

    from forgeml.recsys.upkeep import refresh_lists

    return refresh_lists(pq.read_table(interactions)) if interactions else {}


@pipeline
def recsys_upkeep(interactions: str = "", keep_versions_s: float = 3600.0) -> None:
    """Compact the vector tables; refresh the candidate lists when an interaction log is given."""
    compact(keep_versions_s)
    refresh(interactions)
