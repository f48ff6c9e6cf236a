"""Generation counters in the kernel's ``kv`` table: a layer bumps one in the transaction that changes
its state, and readers in any process compare it with the value their cache was built at."""

from __future__ import annotations

import time
from typing import Any


def bump(tx: Any, key: str) -> None:
    """Advance the counter ``key`` inside the caller's transaction (creating it at 1)."""
    tx.execute("INSERT INTO kv (key, value, updated_at) VALUES (?, '1', ?)"
               " ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(kv.value AS INTEGER) + 1 AS TEXT),"
               " updated_at = excluded.updated_at", (key, time.time()))


def read(db: Any, key: str) -> int:
    """Return the counter ``key`` (0 before its first bump)."""
    rows = db.query("SELECT value FROM kv WHERE key = ?", (key,))
    return int(rows[0]["value"]) if rows else 0
