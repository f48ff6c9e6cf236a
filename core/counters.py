"""Generation counters in the kernel's ``kv`` table: a layer bumps one in the transaction that changes
its state, and readers in any process compare it with the value their cache was built at."""

from __future__ import annotations

import time
import weakref
from typing import Any

# per store: key -> (the store's data version when the counter was read, the value read)
_SEEN: weakref.WeakKeyDictionary[Any, dict[str, tuple[int, int]]] = weakref.WeakKeyDictionary()


def bump(tx: Any, key: str) -> None:
    """Advance the counter ``key`` inside the caller's transaction (creating it at 1)."""
    tx.execute("INSERT INTO kv (key, value, updated_at) VALUES (?, '1', ?)"
               " ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(kv.value AS INTEGER) + 1 AS TEXT),"
               " updated_at = excluded.updated_at", (key, time.time()))


def read(db: Any, key: str) -> int:
    """Return the counter ``key`` (0 before its first bump).

    Where the store has a cheap "did anyone commit" probe (SQLite's data_version), the row is read
    again only after some commit: a bump, in any process, is a commit, so nothing newer is missed.
    """
    probe = getattr(db, "data_version", None)
    version = probe() if probe is not None else None
    seen = None
    if version is not None:
        seen = _SEEN.get(db)
        if seen is None:
            seen = _SEEN.setdefault(db, {})
        hit = seen.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
    # the version was taken before this read: a commit landing in between moves it again, so the
    # next call reads the row afresh rather than trusting a value paired with a stale version
    rows = db.query("SELECT value FROM kv WHERE key = ?", (key,))
    value = int(rows[0]["value"]) if rows else 0
    if seen is not None and version is not None:
        seen[key] = (version, value)
    return value
