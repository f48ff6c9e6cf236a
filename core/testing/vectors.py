"""Conformance suite for vector stores (contract: :class:`forgeml.contracts.VectorStore`).

Subclass :class:`VectorStoreSuite` as ``Test...`` and give it an ``open_store`` fixture: a picklable,
zero-argument callable opening your store over the same data at each call. Rules enforced beyond
the contract's docstrings:

- ``search`` returns at most k rows, nearest first, with a non-decreasing ``_distance`` column, and
  every stored column (keys and attributes) alongside;
- ``upsert`` replaces rows with the same key instead of adding duplicates;
- rows survive a reopen and one process's rows are found by another;
- ``rows`` returns exactly the rows a predicate matches; ``optimize`` after many small writes keeps
  every row findable and reports the row count;
- a missing vector column, k <= 0 and a table never written raise ForgeError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from forgeml.contracts import VectorStore
from forgeml.errors import ForgeError
from forgeml.testing.base import StoreSuite
from forgeml.testing.process import call_opened, close, run_elsewhere


def _rows(ids: list[int], vectors: list[list[float]], labels: list[str] | None = None) -> Any:
    import pyarrow as pa

    labels = labels or [f"item-{i}" for i in ids]
    return pa.table({"item_id": ids, "label": labels,
                     "embedding": pa.array(vectors, pa.list_(pa.float32(), len(vectors[0])))})


def _upsert_elsewhere(open_store: Callable[[], Any], table: str, data: Any) -> int:
    return call_opened(open_store, "upsert", table, data, "embedding", ["item_id"])


GRID = [[float(i), float(i % 3)] for i in range(12)]


class VectorStoreSuite(StoreSuite):
    """Tests every vector store must pass; subclass it and define an ``open_store`` fixture."""

    kind = "vector store"

    def test_implements_the_contract(self, store: Any) -> None:
        """The store has every method of the VectorStore protocol."""
        assert isinstance(store, VectorStore)

    def test_erases_one_subject(self, store: Any, open_store: Callable[[], Any], table: str) -> None:
        """The subject's rows leave search results and counts, for this opener and the next one."""
        from forgeml.contracts import Subject, SubjectStore

        assert isinstance(store, SubjectStore), "a vector store implements find_subject and erase_subject"
        store.upsert(table, _rows(list(range(6)), GRID[:6]), "embedding", ["item_id"])
        subject = Subject("item_id", "4")
        assert [(h.location, h.rows) for h in store.find_subject(subject)] == [(table, 1)]
        assert sum(h.rows for h in store.erase_subject(subject)) == 1
        assert call_opened(open_store, "find_subject", subject) == [], "another opener still finds the subject"
        assert store.count(table) == 5
        assert 4 not in store.search(table, [4.0, 1.0], k=3).column("item_id").to_pylist()

    def test_nearest_first_with_distances(self, store: Any, table: str) -> None:
        """search returns the k nearest rows, nearest first, with their columns and a rising _distance."""
        assert store.upsert(table, _rows(list(range(12)), GRID), "embedding", ["item_id"]) == 12
        got = store.search(table, [4.1, 1.0], k=3)
        ids = got.column("item_id").to_pylist()
        assert ids[0] == 4 and sorted(ids) == [3, 4, 5], f"expected item 4 then 3 and 5, got {ids}"
        distances = got.column("_distance").to_pylist()
        assert distances == sorted(distances), f"_distance must not decrease, got {distances}"
        assert got.column("label").to_pylist()[0] == "item-4"

    def test_k_larger_than_the_table(self, store: Any, table: str) -> None:
        """Asking for more rows than stored returns every row once."""
        store.upsert(table, _rows([1, 2], [[0.0, 0.0], [1.0, 1.0]]), "embedding", ["item_id"])
        assert sorted(store.search(table, [0.0, 0.0], k=50).column("item_id").to_pylist()) == [1, 2]

    def test_filter(self, store: Any, table: str) -> None:
        """A SQL predicate keeps only matching rows."""
        store.upsert(table, _rows(list(range(12)), GRID), "embedding", ["item_id"])
        got = store.search(table, [0.0, 0.0], k=3, filter="item_id >= 6").column("item_id").to_pylist()
        assert got and all(i >= 6 for i in got), f"expected only item_id >= 6, got {got}"

    def test_upsert_replaces_by_key(self, store: Any, table: str) -> None:
        """Writing a key again replaces its row: the count stays and the new vector is found."""
        store.upsert(table, _rows([1, 2], [[0.0, 0.0], [5.0, 5.0]]), "embedding", ["item_id"])
        store.upsert(table, _rows([1], [[9.0, 9.0]], ["moved"]), "embedding", ["item_id"])
        assert store.count(table) == 2, f"expected 2 rows after replacing key 1, got {store.count(table)}"
        nearest = store.search(table, [9.0, 9.0], k=1).to_pylist()[0]
        assert (nearest["item_id"], nearest["label"]) == (1, "moved"), f"expected the replaced row, got {nearest}"

    def test_count_of_a_missing_table_is_zero(self, store: Any, table: str) -> None:
        """count() of a table never written is 0."""
        assert store.count(table) == 0

    def test_rows_survive_a_reopen(self, store: Any, open_store: Callable[[], Any], table: str) -> None:
        """A store opened again over the same data finds what the first one wrote."""
        store.upsert(table, _rows([1, 2], [[0.0, 0.0], [1.0, 1.0]]), "embedding", ["item_id"])
        close(store)
        again = open_store()
        try:
            assert again.count(table) == 2, f"after a reopen expected 2 rows, got {again.count(table)}"
            assert again.search(table, [1.0, 1.0], k=1).column("item_id").to_pylist() == [2]
        finally:
            close(again)

    def test_another_process_sees_the_writes(self, store: Any, open_store: Callable[[], Any], table: str) -> None:
        """Rows another process upserted are found here."""
        store.upsert(table, _rows([1], [[0.0, 0.0]]), "embedding", ["item_id"])
        assert run_elsewhere(_upsert_elsewhere, open_store, table, _rows([2], [[7.0, 7.0]])) == 1
        assert store.count(table) == 2, f"expected 2 rows with the other process's, got {store.count(table)}"
        assert store.search(table, [7.0, 7.0], k=1).column("item_id").to_pylist() == [2]

    def test_rows_by_predicate_are_exact(self, store: Any, table: str) -> None:
        """rows() finds the keys a predicate names, whatever their distance."""
        store.upsert(table, _rows(list(range(12)), GRID), "embedding", ["item_id"])
        got = store.rows(table, "item_id IN (2, 11)", 10).column("item_id").to_pylist()
        assert sorted(got) == [2, 11], f"expected items 2 and 11, got {got}"
        assert store.rows(table, "item_id > 100", 10).num_rows == 0

    def test_optimize_keeps_every_row(self, store: Any, table: str) -> None:
        """Compacting after many small upserts leaves every row findable and says how many there are."""
        for i in range(6):
            store.upsert(table, _rows([i], [GRID[i]]), "embedding", ["item_id"])
        report = store.optimize(table)
        assert report["rows"] == 6 == store.count(table), f"expected 6 rows after optimize, got {report}"
        assert store.search(table, GRID[4], k=1).column("item_id").to_pylist() == [4]

    def test_bad_input_raises_forge_errors(self, store: Any, table: str) -> None:
        """A missing vector column, k <= 0 or a table never written raise ForgeError."""
        import pyarrow as pa

        with pytest.raises(ForgeError, match="embedding"):
            store.upsert(table, pa.table({"item_id": [1]}), "embedding", ["item_id"])
        with pytest.raises(ForgeError):
            store.search(table, [0.0, 0.0], k=1)
        store.upsert(table, _rows([1], [[0.0, 0.0]]), "embedding", ["item_id"])
        with pytest.raises(ForgeError, match="k"):
            store.search(table, [0.0, 0.0], k=0)
