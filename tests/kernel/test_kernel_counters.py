"""Generation counters: a value remembered between reads is never staler than the last commit, whoever made it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from forgeml import counters
from forgeml.storage.sqlite import SQLiteMetadataStore

BUMP = textwrap.dedent("""
    import sys
    from forgeml import counters
    from forgeml.storage.sqlite import SQLiteMetadataStore
    store = SQLiteMetadataStore(sys.argv[1])
    with store.transaction() as tx:
        counters.bump(tx, "demo")
    store.close()
""")


def _bump_elsewhere(path: Path) -> None:
    subprocess.run([sys.executable, "-c", BUMP, str(path)], check=True, timeout=120)


def test_a_bump_by_any_connection_or_process_is_read_next_time(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    store, other = SQLiteMetadataStore(path), SQLiteMetadataStore(path)
    try:
        assert counters.read(store, "demo") == 0
        assert counters.read(store, "demo") == 0  # remembered: nobody committed in between
        _bump_elsewhere(path)
        assert counters.read(store, "demo") == 1
        with other.transaction() as tx:  # another connection of this process
            counters.bump(tx, "demo")
        assert counters.read(store, "demo") == 2
        with store.transaction() as tx:  # the reader's own connection: its commits move the probe too
            counters.bump(tx, "demo")
            assert counters.read(store, "demo") == 3  # inside the transaction, its own uncommitted write
        assert counters.read(store, "demo") == 3
        try:
            with store.transaction() as tx:
                counters.bump(tx, "demo")
                assert counters.read(store, "demo") == 4
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        assert counters.read(store, "demo") == 3  # a rolled-back bump is not remembered
        assert counters.read(other, "demo") == 3
    finally:
        store.close()
        other.close()


def test_the_probe_survives_a_closed_store(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    store = SQLiteMetadataStore(path)
    first = store.data_version()
    assert isinstance(first, int)
    store.close()
    _bump_elsewhere(path)
    assert counters.read(store, "demo") == 1  # reopened after close, and still right
    store.close()
