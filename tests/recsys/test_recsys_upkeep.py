"""The recsys_upkeep pipeline compacts the registered embedding tables and refreshes the candidate lists."""

from __future__ import annotations

from typing import Any


def test_upkeep_compacts_tables_and_refreshes_lists(shop_ws: Any, tmp_path: Any) -> None:
    """After small writes fragment a table, one pipeline run compacts it; the lists are rebuilt from the log."""
    import pyarrow.parquet as pq

    from forgeml.pipelines import run_pipeline
    from forgeml.plugins.recsys.upkeep import recsys_upkeep
    from forgeml.recsys import registered_table
    from forgeml.recsys.embeddings import VECTOR_COLUMN

    ws, shop = shop_ws
    table = registered_table("two_tower@production", ws)
    store = ws.vector_store
    rows = store.rows(table.table, "item_id < 40", 40)
    for start in range(0, 40, 8):  # rewrite the same vectors in small batches, as streaming updates would
        store.upsert(table.table, rows.slice(start, 8), VECTOR_COLUMN, [table.key])
    log = tmp_path / "interactions.parquet"
    pq.write_table(shop.train, log)
    run = run_pipeline(recsys_upkeep, {"interactions": str(log), "keep_versions_s": 0.0}, workspace=ws)
    assert run.status == "SUCCEEDED", run
    reports = {r["table"]: r for r in run.output("compact", workspace=ws)}
    assert reports[table.table]["fragments_before"] > reports[table.table]["fragments_after"] == 1
    assert reports[table.table]["rows"] == shop.items.num_rows == store.count(table.table)
    assert table.user_table in reports  # the user tower's table is kept up too
    interacted = len(set(shop.train.column("item").to_pylist()))  # every item someone interacted with has a list
    assert run.output("refresh", workspace=ws) == {"popular": 1, "item_cooc": interacted}
    got = store.search(table.table, rows.column(VECTOR_COLUMN)[3].as_py(), 1)
    assert got.column(table.key).to_pylist() == [rows.column(table.key)[3].as_py()]
