"""The online stores beyond their conformance suite (tests/conformance runs it on SQLite and Redis)."""

from __future__ import annotations

import uuid


def test_sqlite_store_survives_reopen(tmp_path):
    """Values written by one store object are read by another on the same file (another process alike)."""
    import pyarrow as pa

    from forgeml.storage.online import SQLiteOnlineStore
    from forgeml.testing.online import T0

    first = SQLiteOnlineStore(tmp_path / "o.db")
    first.write("v", pa.table({"k": [1], "ts": pa.array([T0], pa.timestamp("us", tz="UTC")), "a": [4.0]}), ["k"], "ts")
    first.close()
    second = SQLiteOnlineStore(tmp_path / "o.db")
    assert second.read("v", [(1,)], ["a"]).column("a").to_pylist() == [4.0]
    second.close()


def test_redis_is_selectable_in_plugins_toml(tmp_path, redis_url):
    """[storage.online] plugin = "redis" with a url makes the workspace use Redis."""
    from forgeml.plugins.redis import RedisOnlineStore
    from forgeml.workspace import Workspace

    root = tmp_path / "ws"
    root.mkdir()
    (root / "plugins.toml").write_text(f'[storage.online]\nplugin = "redis"\nurl = "{redis_url}"\n'
                                       f'key_prefix = "forgeml-test-{uuid.uuid4().hex[:6]}:"\n')
    ws = Workspace.init(root)
    try:
        assert isinstance(ws.online_store, RedisOnlineStore)
    finally:
        ws.close()
