"""forget reaches the event streams themselves: a folder of files (values blanked in place) and Redis Streams."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest


def _events():
    import pyarrow as pa

    now = datetime.now(UTC)
    return pa.table({"card_id": [7, 8, 7], "event_timestamp": pa.array([now] * 3, pa.timestamp("us", tz="UTC")),
                     "merchant": ["shop-7a", "shop-8", "shop-7b"]})


def test_a_file_stream_keeps_its_offsets_and_loses_the_subject(configure):
    """The subject's events are blanked in place: row numbers (offsets) stay, their values are gone."""
    from forgeml.privacy import forget

    ws = configure('[streams.txns]\nplugin = "files"\npath = "events"\n')
    stream = ws.stream("txns")
    stream.publish(_events())
    planned = forget("card_id=7", dry_run=True, workspace=ws)[0]
    assert [(h.place, h.rows) for h in planned.holdings] == [("stream", 2)]
    forget("card_id=7", workspace=ws)
    table = stream.read(stream.files()[0])
    assert table.num_rows == 3 and table.column("card_id").to_pylist() == [None, 8, None]
    assert not any(b"shop-7" in p.read_bytes() for p in (ws.root / "events").rglob("*") if p.is_file())


@pytest.mark.service
def test_a_redis_stream_loses_the_subjects_entries(configure, redis_url):
    """XDEL removes the subject's entries; others stay readable by a consumer group."""
    import redis

    from forgeml.privacy import forget

    key = f"forgeml-test:{uuid.uuid4().hex}"
    ws = configure(f'[streams.txns]\nplugin = "redis"\nurl = "{redis_url}"\nstream = "{key}"\n')
    try:
        ws.stream("txns").publish(_events())
        report = forget("card_id=7", workspace=ws)[0]
        assert [(h.place, h.rows) for h in report.holdings] == [("stream", 2)]
        entries = redis.Redis.from_url(redis_url).xrange(key)
        assert [fields[b"card_id"] for _, fields in entries] == [b"8"]
        assert forget("card_id=7", dry_run=True, workspace=ws)[0].holdings == []
    finally:
        redis.Redis.from_url(redis_url).delete(key)
