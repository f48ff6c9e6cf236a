"""Conformance suite for offline feature stores (contract: :class:`forgeml.contracts.OfflineStore`).

Subclass :class:`OfflineStoreSuite` as ``Test...`` and give it an ``open_store`` fixture: a picklable,
zero-argument callable opening your store over the same data at each call, empty at first. Rules
enforced beyond the contract's docstrings:

- rows survive a reopen and rows written by one process are read by another;
- every dtype round-trips: int64, float64 with NaN kept apart from null, bool, text, UTC timestamps;
- timestamps in any zone are the same instant, read back in UTC; ``read`` is the half-open [start, end);
- ``point_in_time_join`` keeps every entity row in order, takes the newest value at or before each
  row's time, never a later one, and gives null outside the TTL;
- missing columns, naive timestamps and bad SQL raise ForgeError.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from forgeml.contracts import FeatureRequest, OfflineStore
from forgeml.errors import ForgeError
from forgeml.testing.base import StoreSuite
from forgeml.testing.process import call_opened, close, run_elsewhere

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _ts(values: list[datetime], tz: str = "UTC") -> Any:
    import pyarrow as pa

    return pa.array(values, pa.timestamp("us", tz=tz))


def _history(ids: list[int], times: list[datetime], values: list[float]) -> Any:
    import pyarrow as pa

    return pa.table({"user_id": ids, "event_timestamp": _ts(times), "v": values})


def _write_elsewhere(open_store: Callable[[], Any], table: str, data: Any) -> int:
    return call_opened(open_store, "write", table, data, "event_timestamp")


def _sorted(table: Any, key: str = "user_id") -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: (r[key], str(r.get("event_timestamp"))))


class OfflineStoreSuite(StoreSuite):
    """Tests every offline store must pass; subclass it and define an ``open_store`` fixture."""

    kind = "offline store"

    def test_implements_the_contract(self, store: Any) -> None:
        """The store has every method of the OfflineStore protocol."""
        assert isinstance(store, OfflineStore)

    def test_dtypes_round_trip(self, store: Any, table: str) -> None:
        """int64, float64 (NaN and null kept apart), bool, text and timestamps come back as written."""
        import pyarrow as pa

        data = pa.table({"user_id": pa.array([1, 2, 3], pa.int64()),
                         "event_timestamp": _ts([T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]),
                         "f": [1.5, float("nan"), None], "i": pa.array([2**40, None, -3], pa.int64()),
                         "b": [True, False, None], "s": ["Zürich ✓", 'say "hi"', None]})
        assert store.write(table, data, "event_timestamp") == 3
        assert store.has_table(table)
        got = store.read(table, columns=["user_id", "event_timestamp", "f", "i", "b", "s"])
        rows = _sorted(got)
        assert [r["i"] for r in rows] == [2**40, None, -3]
        assert rows[0]["f"] == 1.5 and math.isnan(rows[1]["f"]) and rows[2]["f"] is None, \
            f"expected [1.5, nan, None] (NaN is not null), got {[r['f'] for r in rows]}"
        assert [r["b"] for r in rows] == [True, False, None]
        assert [r["s"] for r in rows] == ["Zürich ✓", 'say "hi"', None]
        assert got.schema.field("i").type == pa.int64(), f"expected int64, got {got.schema.field('i').type}"
        assert [r["event_timestamp"] for r in rows] == [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]

    def test_unknown_table_is_empty(self, store: Any, table: str) -> None:
        """A table never written has no rows and does not exist."""
        assert not store.has_table(table)
        assert store.read(table).num_rows == 0

    def test_writes_append(self, store: Any, table: str) -> None:
        """A second write adds rows instead of replacing the first."""
        store.write(table, _history([1], [T0], [1.0]), "event_timestamp")
        store.write(table, _history([1], [T0 + timedelta(days=3)], [2.0]), "event_timestamp")
        assert sorted(store.read(table).column("v").to_pylist()) == [1.0, 2.0]

    def test_time_zones_are_one_instant_and_ranges_half_open(self, store: Any, table: str) -> None:
        """Rows in another zone are stored as UTC instants; read(start, end) keeps start and drops end."""
        import pyarrow as pa

        kolkata = timezone(timedelta(hours=5, minutes=30))
        local = [datetime(2024, 5, 1, 5, 30, tzinfo=kolkata) + timedelta(hours=h) for h in range(3)]  # 00:00.. UTC
        store.write(table, pa.table({"user_id": [1, 2, 3], "event_timestamp": _ts(local, "+05:30"),
                                     "v": [0.0, 1.0, 2.0]}), "event_timestamp")
        got = store.read(table, start=T0, end=T0 + timedelta(hours=2))
        times = sorted(got.column("event_timestamp").to_pylist())
        assert times == [T0, T0 + timedelta(hours=1)], f"expected [{T0}, {T0 + timedelta(hours=1)}], got {times}"
        assert all(t.utcoffset() == timedelta(0) for t in times), f"expected UTC timestamps, got {times}"

    def test_erases_one_subject(self, store: Any, open_store: Callable[[], Any], table: str) -> None:
        """find_subject locates one key's rows across dates; erase_subject removes only them, for every reader."""
        from forgeml.contracts import Subject, SubjectStore

        assert isinstance(store, SubjectStore), "an offline store implements find_subject and erase_subject"
        store.write(table, _history([1, 2, 1], [T0, T0, T0 + timedelta(days=2)], [1.0, 2.0, 3.0]), "event_timestamp")
        subject = Subject("user_id", "1")
        found = store.find_subject(subject)
        assert sum(h.rows for h in found) == 2, f"expected 2 rows of user 1, found {found}"
        assert sum(h.rows for h in store.erase_subject(subject)) == 2
        assert store.find_subject(subject) == [], "the subject's rows are still found after erase_subject"
        assert call_opened(open_store, "find_subject", subject) == [], "another opener still finds the subject"
        assert _sorted(store.read(table)) == [{"user_id": 2, "event_timestamp": T0, "v": 2.0}]
        assert store.find_subject(Subject("no_such_column", "1")) == []

    def test_rows_survive_a_reopen(self, store: Any, open_store: Callable[[], Any], table: str) -> None:
        """A store opened again over the same data reads what the first one wrote."""
        store.write(table, _history([1, 2], [T0, T0], [1.0, 2.0]), "event_timestamp")
        close(store)
        again = open_store()
        try:
            got = sorted(again.read(table).column("v").to_pylist())
        finally:
            close(again)
        assert got == [1.0, 2.0], f"after a reopen expected [1.0, 2.0], got {got}"

    def test_another_process_sees_the_writes(self, store: Any, open_store: Callable[[], Any], table: str) -> None:
        """Rows another process appended are read here."""
        store.write(table, _history([1], [T0], [1.0]), "event_timestamp")
        assert run_elsewhere(_write_elsewhere, open_store, table, _history([2], [T0], [2.0])) == 1
        got = sorted(store.read(table).column("v").to_pylist())
        assert got == [1.0, 2.0], f"expected this process's and the other's rows [1.0, 2.0], got {got}"

    def test_point_in_time_join(self, store: Any, table: str) -> None:
        """Each entity row gets the newest value at or before its time, within the TTL; order is kept."""
        import pyarrow as pa

        store.write(table, _history([1, 1, 2], [T0, T0 + timedelta(hours=2), T0], [10.0, 12.0, 20.0]),
                    "event_timestamp")
        entities = pa.table({"user_id": [2, 1, 1, 1, 3],
                             "event_timestamp": _ts([T0 + timedelta(days=2), T0 + timedelta(hours=1),
                                                     T0 + timedelta(hours=3), T0 - timedelta(hours=1), T0])})
        request = FeatureRequest("conf", store.table_relation(table), ("user_id",), ("v",), ("conf__v",),
                                 "event_timestamp", ttl_s=86400.0)
        got = store.point_in_time_join(entities, [request], "event_timestamp")
        assert got.column("user_id").to_pylist() == [2, 1, 1, 1, 3], "entity rows must keep their order"
        values = got.column("conf__v").to_pylist()
        assert values == [None, 10.0, 12.0, None, None], \
            f"expected [None (past TTL), 10.0, 12.0, None (no earlier value), None (unknown)], got {values}"

    def test_bad_rows_and_queries_raise_forge_errors(self, store: Any, table: str) -> None:
        """A missing timestamp column, naive timestamps or invalid SQL raise ForgeError, writing nothing."""
        import pyarrow as pa

        with pytest.raises(ForgeError, match="event_timestamp"):
            store.write(table, pa.table({"user_id": [1], "v": [1.0]}), "event_timestamp")
        naive = pa.table({"user_id": [1], "event_timestamp": pa.array([T0.replace(tzinfo=None)], pa.timestamp("us")),
                          "v": [1.0]})
        with pytest.raises(ForgeError, match="time zone"):
            store.write(table, naive, "event_timestamp")
        assert not store.has_table(table)
        with pytest.raises(ForgeError):
            store.query("SELEC nonsense FROM")
