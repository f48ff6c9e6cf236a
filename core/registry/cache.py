"""Resolve ``name@ref`` from memory until the registry changes, in this process or any other.

Every registry write that can change what a reference resolves to (register, stage change,
rollback, alias set or removed) bumps a generation counter in the same transaction. A cached
answer is used only while the counter still reads the value it was built at: one indexed read
of one row per resolve, on SQLite and PostgreSQL alike, instead of the version and alias queries.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from forgeml import counters

GENERATION_KEY = "registry.generation"
MAX_ENTRIES = 4096


def bump(tx: Any) -> None:
    """Mark the registry changed, inside the transaction that changes it."""
    counters.bump(tx, GENERATION_KEY)


class ResolveCache:
    """Resolved versions of one workspace, valid for one registry generation."""

    def __init__(self) -> None:
        self.generation = -1
        self.entries: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}
        self.lock = threading.Lock()

    def lookup(self, workspace: Any, name: str, ref: str) -> tuple[int, tuple[Any, dict[str, Any]] | None]:
        """Return the registry's generation now and the entry cached for name@ref under it, if any."""
        from forgeml.registry.schema import store

        generation = counters.read(store(workspace), GENERATION_KEY)
        with self.lock:
            if generation != self.generation:
                self.entries.clear()
                self.generation = generation
            return generation, self.entries.get((name, ref))

    def resolve(self, workspace: Any, name: str, ref: str) -> tuple[Any, dict[str, Any]]:
        """Return the ModelVersion name@ref resolves to now, with its plain-value form."""
        from forgeml.registry.models import get_model_version

        # the generation is read before resolving: a write landing in between leaves the entry under
        # the older generation, so the next call sees the counter moved and resolves again
        generation, found = self.lookup(workspace, name, ref)
        if found is not None:
            return found
        mv = get_model_version(name, ref, workspace=workspace)
        entry = (mv, mv.to_dict())
        with self.lock:
            if self.generation == generation:
                if len(self.entries) >= MAX_ENTRIES:
                    self.entries.clear()
                self.entries[(name, ref)] = entry
        return entry


_caches: weakref.WeakKeyDictionary[Any, ResolveCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_for(workspace: Any) -> ResolveCache:
    """Return this process's resolve cache of a workspace."""
    with _caches_lock:
        cache = _caches.get(workspace)
        if cache is None:
            cache = _caches[workspace] = ResolveCache()
    return cache


def resolved_dict(name: str, ref: str, workspace: Any, cached_only: bool = False) -> dict[str, Any] | None:
    """Return name@ref's version as plain values (a copy the caller may extend).

    With ``cached_only``, answer only from the cache (None on a miss): cheap enough for an event loop.
    """
    cache = cache_for(workspace)
    ref = str(ref).strip()
    if cached_only:
        found = cache.lookup(workspace, name, ref)[1]
        return None if found is None else dict(found[1])
    return dict(cache.resolve(workspace, name, ref)[1])
