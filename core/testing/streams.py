"""Conformance suite for event streams (contract: :class:`forgeml.contracts.EventStream`).

Subclass :class:`EventStreamSuite` as ``Test...`` and give it a ``stream`` fixture returning an
empty stream of its own, and a ``reopen`` fixture: a function taking that stream and returning a
new instance on the same underlying stream (as a restarted process would open it). Records may
come back typed or as text; the suite casts them to the published types before comparing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from forgeml.contracts import EventStream, StreamConsumer

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def events(start: int, count: int) -> Any:
    """Return count events numbered from start: card_id, event_timestamp, amount, merchant."""
    import pyarrow as pa

    ids = list(range(start, start + count))
    return pa.table({"card_id": pa.array([i % 7 for i in ids], pa.int64()),
                     "event_timestamp": pa.array([T0 + timedelta(seconds=i) for i in ids],
                                                 pa.timestamp("us", tz="UTC")),
                     "amount": pa.array([i * 0.5 for i in ids], pa.float64()),
                     "merchant": pa.array([f"m{i}" for i in ids], pa.string())})


def typed(records: Any, like: Any) -> Any:
    """Return records' event columns cast to the types of the published table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pa.table({name: pc.cast(records.column(name), like.schema.field(name).type) for name in like.column_names})


def drain(consumer: Any, limit: int = 100, max_records: int = 1000, timeout_s: float = 0.2) -> Any:
    """Poll until a poll comes back empty; return everything delivered, concatenated."""
    import pyarrow as pa

    parts = []
    for _ in range(limit):
        got = consumer.poll(max_records, timeout_s)
        if got.num_rows == 0:
            break
        parts.append(got)
    return pa.concat_tables(parts, promote_options="permissive") if parts else None


def last_positions(records: Any) -> dict[str, int]:
    """Return the highest offset delivered per partition."""
    out: dict[str, int] = {}
    for part, off in zip(records.column("_partition").to_pylist(), records.column("_offset").to_pylist()):
        out[part] = max(off, out.get(part, off))
    return out


class EventStreamSuite:
    """Tests every event stream must pass; subclass it and define ``stream`` and ``reopen`` fixtures."""

    @pytest.fixture
    def group(self) -> str:
        """A consumer group name no other test uses."""
        return f"g{uuid.uuid4().hex[:10]}"

    def test_implements_the_contract(self, stream: Any, group: str) -> None:
        """The stream and its consumers have every method of the protocols."""
        assert isinstance(stream, EventStream)
        assert isinstance(stream.consumer(group), StreamConsumer)

    def test_published_records_come_back_in_order_with_positions(self, stream: Any, group: str) -> None:
        """A new group reads every record once, in publish order, with growing offsets per partition."""
        assert stream.publish(events(0, 25)) == 25
        assert stream.publish(events(25, 5)) == 5
        got = drain(stream.consumer(group), max_records=7)
        assert got.num_rows == 30
        assert typed(got, events(0, 30)).equals(events(0, 30))
        seen: dict[str, int] = {}
        for part, off in zip(got.column("_partition").to_pylist(), got.column("_offset").to_pylist()):
            assert off > seen.get(part, -1)
            seen[part] = off

    def test_max_records_bounds_a_poll_and_an_idle_poll_is_empty(self, stream: Any, group: str) -> None:
        """A poll returns at most max_records; once drained, a poll returns an empty table."""
        consumer = stream.consumer(group)
        stream.publish(events(0, 10))
        assert consumer.poll(4, 1.0).num_rows == 4
        rest = drain(consumer)
        assert rest.num_rows == 6
        empty = consumer.poll(10, 0.05)
        assert empty.num_rows == 0 and "_offset" in empty.column_names

    def test_records_published_later_are_delivered(self, stream: Any, group: str) -> None:
        """A consumer that has caught up sees records published afterwards (the stream is tailed)."""
        consumer = stream.consumer(group)
        stream.publish(events(0, 3))
        assert drain(consumer).num_rows == 3
        stream.publish(events(3, 2))
        got = drain(consumer)
        assert typed(got, events(3, 2)).equals(events(3, 2))

    def test_a_reopened_group_resumes_after_its_committed_offsets(self, stream: Any, reopen: Callable[[Any], Any],
                                                                 group: str) -> None:
        """Committed records are not delivered again; uncommitted ones are (at least once)."""
        stream.publish(events(0, 10))
        consumer = stream.consumer(group)
        first = consumer.poll(4, 1.0)
        assert first.num_rows == 4
        consumer.commit(last_positions(first))
        assert consumer.committed() == last_positions(first)
        uncommitted = consumer.poll(3, 1.0)
        assert uncommitted.num_rows == 3
        consumer.close()
        again = reopen(stream).consumer(group)
        replayed = drain(again)
        assert typed(replayed, events(4, 6)).equals(events(4, 6))  # 4..6 again (never committed), then 7..9

    def test_groups_are_independent(self, stream: Any, group: str) -> None:
        """Two groups each read the whole stream, whatever the other committed."""
        stream.publish(events(0, 5))
        a = stream.consumer(group)
        got = drain(a)
        a.commit(last_positions(got))
        assert drain(stream.consumer(f"{group}b")).num_rows == 5
