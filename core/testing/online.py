"""Conformance suite for online feature stores (contract: :class:`forgeml.contracts.OnlineStore`).

Subclass :class:`OnlineStoreSuite` as ``Test...`` and give it an ``open_store`` fixture: a picklable,
zero-argument callable that opens your store over the same data at every call (see
:mod:`forgeml.testing.process`). Every test uses view names of its own, so a shared server needs no
cleanup between tests. The rules enforced beyond the contract's docstrings:

- values survive closing the store and opening it again, and one process sees another's writes;
- ``read_rows`` returns event times in epoch **microseconds** (serving compares them with the clock
  to apply TTLs: milliseconds would make every value look expired);
- event timestamps in any time zone or resolution are stored as the same instant, in UTC;
- NaN reads as null, float32 / int / bool / text / vectors round-trip, and bad rows raise ForgeError.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from forgeml.contracts import OnlineStore
from forgeml.errors import ForgeError
from forgeml.testing.base import StoreSuite
from forgeml.testing.process import call_opened, close

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _rows(ids: list[Any], times: list[datetime], **features: list[Any]) -> Any:
    import pyarrow as pa

    return pa.table({"user_id": ids, "event_timestamp": pa.array(times, pa.timestamp("us", tz="UTC")), **features})


def _micros(when: datetime) -> int:
    return int((when - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


def _write_elsewhere(open_store: Callable[[], Any], view: str, rows: Any) -> int:
    return call_opened(open_store, "write", view, rows, ["user_id"], "event_timestamp")


def _read_rows_elsewhere(open_store: Callable[[], Any], view: str, keys: list[tuple[Any, ...]]) -> Any:
    return call_opened(open_store, "read_rows", view, keys)


class OnlineStoreSuite(StoreSuite):
    """Tests every online store must pass; subclass it and define an ``open_store`` fixture."""

    kind = "online store"

    @pytest.fixture
    def view(self, table: str) -> str:
        """A view name no other test uses."""
        return table

    def test_implements_the_contract(self, store: Any) -> None:
        """The store has every method of the OnlineStore protocol."""
        assert isinstance(store, OnlineStore)

    def test_write_then_read_returns_values_and_event_time(self, store: Any, view: str) -> None:
        """Written values come back per key, in the order asked, with their event timestamps."""
        written = store.write(view, _rows([1, 2], [T0, T0 + timedelta(seconds=1)], a=[1.5, 2.5], s=["x", "y"]),
                              ["user_id"], "event_timestamp")
        assert written == 2
        got = store.read(view, [(2,), (1,)], ["a", "s"])
        assert got.column("a").to_pylist() == [2.5, 1.5]
        assert got.column("s").to_pylist() == ["y", "x"]
        assert got.column("_event_timestamp").to_pylist() == [T0 + timedelta(seconds=1), T0]

    def test_erases_one_subject(self, store: Any, open_store: Callable[[], Any], view: str) -> None:
        """The subject's rows go from single-key and composite-key views; other keys and views stay."""
        import pyarrow as pa

        from forgeml.contracts import Subject, SubjectStore

        assert isinstance(store, SubjectStore), "an online store implements find_subject and erase_subject"
        store.write(view, _rows([1, 2], [T0, T0], a=[1.0, 2.0]), ["user_id"], "event_timestamp")
        pairs = pa.table({"user_id": [1, 2], "item": ["x", "x"], "event_timestamp": pa.array([T0, T0],
                          pa.timestamp("us", tz="UTC")), "a": [3.0, 4.0]})
        store.write(view + "_pairs", pairs, ["user_id", "item"], "event_timestamp")
        subject = Subject("user_id", "1", {view: ("user_id",), view + "_pairs": ("user_id", "item")})
        assert sorted((h.location, h.rows) for h in store.find_subject(subject)) == [(view, 1), (view + "_pairs", 1)]
        assert sum(h.rows for h in store.erase_subject(subject)) == 2
        assert call_opened(open_store, "find_subject", subject) == [], "another opener still finds the subject"
        assert store.read_rows(view, [(1,), (2,)])[0] is None
        assert store.read_rows(view, [(2,)])[0] is not None
        assert store.read_rows(view + "_pairs", [(2, "x")])[0] is not None

    def test_missing_keys_and_features_are_null(self, store: Any, view: str) -> None:
        """An absent key gives nulls and a null timestamp; an unknown feature gives nulls."""
        store.write(view, _rows([1], [T0], a=[1.0]), ["user_id"], "event_timestamp")
        got = store.read(view, [(1,), (99,)], ["a", "nope"])
        assert got.column("a").to_pylist() == [1.0, None]
        assert got.column("nope").to_pylist() == [None, None]
        assert got.column("_event_timestamp").to_pylist() == [T0, None]
        assert store.read_rows(view, []) == []

    def test_older_rows_never_replace_newer_ones(self, store: Any, view: str) -> None:
        """A late, older row is ignored; a newer one replaces every feature of the key."""
        store.write(view, _rows([1], [T0 + timedelta(hours=1)], a=[2.0], b=[20.0]), ["user_id"], "event_timestamp")
        assert store.write(view, _rows([1], [T0], a=[1.0], b=[10.0]), ["user_id"], "event_timestamp") == 0
        assert store.read(view, [(1,)], ["a", "b"]).to_pylist()[0]["a"] == 2.0
        store.write(view, _rows([1], [T0 + timedelta(hours=2)], a=[3.0], b=[None]), ["user_id"], "event_timestamp")
        row = store.read(view, [(1,)], ["a", "b"]).to_pylist()[0]
        assert (row["a"], row["b"]) == (3.0, None)

    def test_newest_row_of_a_batch_wins(self, store: Any, view: str) -> None:
        """When a batch holds several rows of one key, whatever their order, the newest is kept."""
        times = [T0 + timedelta(minutes=m) for m in (5, 1, 9, 3)]
        store.write(view, _rows([7, 7, 7, 7], times, a=[5.0, 1.0, 9.0, 3.0]), ["user_id"], "event_timestamp")
        assert store.read(view, [(7,)], ["a"]).column("a").to_pylist() == [9.0]

    def test_values_round_trip_exactly(self, store: Any, view: str) -> None:
        """Whole floats stay floats, float32 and extreme values survive, NaN reads as null, text is escaped."""
        import pyarrow as pa

        rows = _rows([1, 2], [T0, T0], f=[1.0, 1e-320], big=[float("inf"), float("-inf")],
                     nan=[float("nan"), 2.5], i=[3, None], b=[True, False], s=['say "hi"\n', "Zürich ✓"],
                     f32=pa.array([0.1, 1 / 3], pa.float32()))
        store.write(view, rows, ["user_id"], "event_timestamp")
        got = {r[1]["i"] if r[1]["i"] is not None else -1: r[1] for r in store.read_rows(view, [(1,), (2,)])}
        one, two = got[3], got[-1]
        assert one["f"] == 1.0 and isinstance(one["f"], float) and two["f"] == 1e-320
        assert (one["big"], two["big"]) == (float("inf"), float("-inf"))
        assert one["nan"] is None and two["nan"] == 2.5
        assert (one["b"], two["b"]) == (True, False)
        assert (one["s"], two["s"]) == ('say "hi"\n', "Zürich ✓")
        assert [one["f32"], two["f32"]] == pa.array([0.1, 1 / 3], pa.float32()).to_pylist()

    def test_views_are_separate(self, store: Any, view: str) -> None:
        """The same key in two views holds two independent rows."""
        other = f"{view}_b"
        store.write(view, _rows([1], [T0], a=[1.0]), ["user_id"], "event_timestamp")
        store.write(other, _rows([1], [T0], a=[2.0]), ["user_id"], "event_timestamp")
        assert store.read(view, [(1,)], ["a"]).column("a").to_pylist() == [1.0]
        assert store.read(other, [(1,)], ["a"]).column("a").to_pylist() == [2.0]

    def test_composite_keys_and_string_keys(self, store: Any, view: str) -> None:
        """Keys of several columns and string keys round-trip."""
        import pyarrow as pa

        rows = pa.table({"driver": ["d1", "d1", "d2"], "city": [1, 2, 1],
                         "event_timestamp": pa.array([T0] * 3, pa.timestamp("us", tz="UTC")), "v": [1, 2, 3]})
        store.write(view, rows, ["driver", "city"], "event_timestamp")
        got = store.read(view, [("d1", 2), ("d2", 1), ("d2", 2)], ["v"])
        assert got.column("v").to_pylist() == [2, 3, None]

    def test_embeddings_and_many_keys(self, store: Any, view: str) -> None:
        """Vectors round-trip and a read of 1,500 keys (more than one batch) keeps the order."""
        ids = list(range(1500))
        vectors = [[float(i), float(i) / 2] for i in ids]
        store.write(view, _rows(ids, [T0] * 1500, emb=vectors), ["user_id"], "event_timestamp")
        keys = [(i,) for i in reversed(ids)]
        rows = store.read_rows(view, keys)
        assert [r[1]["emb"] for r in rows] == list(reversed(vectors))

    def test_delete_view(self, store: Any, view: str) -> None:
        """delete_view removes that view's rows only."""
        store.write(view, _rows([1, 2], [T0, T0], a=[1.0, 2.0]), ["user_id"], "event_timestamp")
        store.write(f"{view}_keep", _rows([1], [T0], a=[1.0]), ["user_id"], "event_timestamp")
        assert store.delete_view(view) == 2
        assert store.read_rows(view, [(1,), (2,)]) == [None, None]
        assert store.read_rows(f"{view}_keep", [(1,)])[0] is not None

    def test_bad_rows_raise_forge_errors(self, store: Any, view: str) -> None:
        """A missing key column or naive timestamps are refused with a clear error, writing nothing."""
        import pyarrow as pa

        with pytest.raises(ForgeError, match="user_id"):
            store.write(view, pa.table({"event_timestamp": pa.array([T0], pa.timestamp("us", tz="UTC")),
                                        "a": [1.0]}), ["user_id"], "event_timestamp")
        naive = pa.table({"user_id": [1], "event_timestamp": pa.array([T0.replace(tzinfo=None)], pa.timestamp("us")),
                          "a": [1.0]})
        with pytest.raises(ForgeError, match="time zone"):
            store.write(view, naive, ["user_id"], "event_timestamp")
        assert store.read_rows(view, [(1,)]) == [None]

    # ------------------------------------------------------------ what real use depends on
    def test_values_survive_a_reopen(self, store: Any, open_store: Callable[[], Any], view: str) -> None:
        """A store opened again over the same data returns what the first one wrote."""
        store.write(view, _rows([1], [T0], a=[4.0]), ["user_id"], "event_timestamp")
        close(store)
        again = open_store()
        try:
            got = again.read_rows(view, [(1,)])
        finally:
            close(again)
        assert got == [(_micros(T0), {"a": 4.0})], f"after a reopen expected the written row, got {got!r}"

    def test_another_process_sees_the_writes(self, store: Any, open_store: Callable[[], Any], view: str) -> None:
        """Rows written by another process are read here, and rows written here are read there."""
        assert _write_elsewhere(open_store, view, _rows([1], [T0], a=[1.5])) == 1
        got = store.read_rows(view, [(1,)])
        assert got == [(_micros(T0), {"a": 1.5})], f"expected the other process's row, got {got!r}"
        store.write(view, _rows([2], [T0], a=[2.5]), ["user_id"], "event_timestamp")
        there = _read_rows_elsewhere(open_store, view, [(2,)])
        assert there == [(_micros(T0), {"a": 2.5})], f"the other process expected this row, got {there!r}"

    def test_read_rows_gives_event_time_in_epoch_microseconds(self, store: Any, view: str) -> None:
        """read_rows returns the event time as integer microseconds since the epoch, UTC."""
        when = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
        store.write(view, _rows([1], [when], a=[1.0]), ["user_id"], "event_timestamp")
        expected = _micros(when)
        got = store.read_rows(view, [(1,)])[0][0]
        assert got == expected, (f"read_rows must return epoch microseconds: expected {expected} for {when}, "
                                 f"got {got} ({got / expected if expected else 0:.3g} x)")

    def test_time_zones_and_resolutions_are_one_instant(self, store: Any, view: str) -> None:
        """Timestamps in another zone or in s/ms/ns resolution are stored as the same UTC instant."""
        import pyarrow as pa

        kolkata = timezone(timedelta(hours=5, minutes=30))
        local = datetime(2024, 5, 1, 18, 0, tzinfo=kolkata)  # 12:30 UTC
        for i, unit in enumerate(("s", "ms", "us", "ns")):
            rows = pa.table({"user_id": [i], "event_timestamp": pa.array([local], pa.timestamp(unit, tz="+05:30")),
                             "a": [float(i)]})
            store.write(view, rows, ["user_id"], "event_timestamp")
        got = store.read(view, [(0,), (1,), (2,), (3,)], ["a"]).column("_event_timestamp").to_pylist()
        expected = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
        assert got == [expected] * 4, f"expected every row at {expected} (UTC), got {got}"
        assert all(t.utcoffset() == timedelta(0) for t in got), f"read must return UTC timestamps, got {got}"
        assert [r[0] for r in store.read_rows(view, [(0,), (3,)])] == [_micros(expected)] * 2
