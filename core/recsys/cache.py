"""Online values held in the recommender's process for a bounded time, so a request reads memory, not the store.

A recommendation request looks up features for hundreds of candidates; most of them were looked up
moments ago by another request. :class:`TTLCache` keeps each key's value for at most ``ttl_s`` seconds
(a little less, spread per key, so keys loaded together do not all expire in the same request) and
loads every missing or expired key of a call in one batch. A value is therefore never older than
``ttl_s`` plus the time of one online read: that is the staleness a recommender configures with
``item_cache_s`` (items) and a list source with ``cache_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from itertools import repeat
from typing import Any

_SPREAD = 1024
_SPLIT_S = 2.0  # as often as a long-lived feature store checks its registry for changed definitions
_MISSING = float("-inf")  # the expiry of a key never loaded: always due


def frozen(value: Any) -> Any:
    """Return a list value as a tuple (other values as they are).

    The collector never untracks a list, so every list held in a long-lived cache is walked by
    each full collection (tens of ms with thousands of lists); a tuple of numbers or text is
    untracked after its first collection and costs nothing afterwards.
    """
    return tuple(value) if type(value) is list else value


class TTLCache:
    """Values per key, each kept up to ``ttl_s`` seconds; missing and expired keys are loaded in one call.

    Expiry times and values live in two dicts rather than as (expiry, value) pairs: the collector
    untracks a tuple only once what it holds is untracked, one level per collection, so pairs holding
    tuples would pile up in the older generations and lengthen their collections.
    """

    def __init__(self, ttl_s: float, load: Callable[[list[Any]], Sequence[Any]], max_keys: int = 1_000_000,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl_s = float(ttl_s)
        self.load = load
        self.max_keys = max_keys
        self.clock = clock
        self.loaded = 0
        """Keys loaded from the source so far (misses and expiries)."""
        # (expiry by key, value by key), swapped as one: a reader never pairs one generation's with another's
        self._held: tuple[dict[Hashable, float], dict[Hashable, Any]] = ({}, {})
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._held[0])

    def get_many(self, keys: Sequence[Any]) -> list[Any]:
        """Return the value of each key, loading the missing and expired ones together."""
        if self.ttl_s <= 0:
            return list(self.load(list(keys)))
        now = self.clock()
        expires, values = self._held
        due = list(map(expires.get, keys, repeat(_MISSING)))
        # the usual case, every key held and fresh, is decided by C loops
        if not due or min(due) > now:
            return list(map(values.__getitem__, keys))
        stale = [k for k, t in zip(keys, due, strict=True) if t <= now]
        fresh = self._fill(list(dict.fromkeys(stale)), now, expires)
        return [fresh[k] if t <= now else values[k] for k, t in zip(keys, due, strict=True)]

    def _fill(self, keys: list[Any], now: float, known: dict[Hashable, float]) -> dict[Any, Any]:
        values = list(self.load(keys))
        if len(values) != len(keys):
            raise ValueError(f"cache loader returned {len(values)} values for {len(keys)} keys")
        # a key read again expires somewhere in the last quarter of ttl_s (by its hash), so a batch read
        # together is read again over several requests; a key read for the first time, somewhere in the
        # last three quarters, so a cache filled at once (a start, a swap) is read again a little at a
        # time rather than in one wave that costs every request of a few seconds its share
        step = self.ttl_s / _SPREAD
        due = {k: now + self.ttl_s - (hash(k) % _SPREAD) * step * (0.25 if k in known else 0.75) for k in keys}
        fresh = dict(zip(keys, values, strict=True))
        with self._lock:
            if len(self._held[0]) + len(keys) > self.max_keys:
                self._held = ({}, {})
            held_expiry, held_values = self._held
            held_values.update(fresh)  # values first: a reader that finds an expiry finds its value
            held_expiry.update(due)
        self.loaded += len(keys)
        return fresh

    def clear(self) -> None:
        """Forget every value: the next call of each key reads the source."""
        with self._lock:
            self._held = ({}, {})


class CandidateFeatures:
    """The features of a request's candidates: item views from memory, user views once, the rest per row.

    A reference is split by its view's join keys: views keyed by the item alone are served from a
    :class:`TTLCache` of per-item value tuples (``ttl_s`` = 0 reads them every time), views keyed by
    the user alone are read once for the request and repeated, and anything else (views keyed by
    both, on-demand views) is looked up per (user, item) row as before.
    """

    def __init__(self, store: Any, user_key: str, item_key: str, ttl_s: float, max_items: int = 1_000_000):
        self.store = store
        self.user_key = user_key
        self.item_key = item_key
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._items: dict[tuple[str, ...], TTLCache] = {}
        self._splits: dict[tuple[str, ...], tuple[float, tuple[list[str], list[str], list[str]]]] = {}

    def split(self, refs: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
        """Return (user-keyed, item-keyed, other) references."""
        key = tuple(refs)
        now = time.monotonic()
        held = self._splits.get(key)
        if held is not None and held[0] > now:
            return held[1]
        users, items, rows = [], [], []
        known = True
        for ref in refs:
            view, _, _ = ref.partition(":")
            try:
                keys = list(self.store.get_feature_view(view).join_keys)
            except Exception:  # an on-demand view or one defined later: the per-row lookup says what is wrong
                keys = []
                known = False
            (users if keys == [self.user_key] else items if keys == [self.item_key] else rows).append(ref)
        if known:  # a view's join keys are read again as often as the store reads its definitions
            self._splits[key] = (now + _SPLIT_S, (users, items, rows))
        return users, items, rows

    def item_cache(self, refs: Sequence[str]) -> TTLCache:
        """Return the cache of per-item value tuples for these item references (one per distinct list)."""
        key = tuple(refs)
        cache = self._items.get(key)
        if cache is None:
            names = [feature_name(r) for r in refs]

            def load(items: list[Any]) -> list[tuple[Any, ...]]:
                got = self.store.get_online_features([{self.item_key: i} for i in items], list(refs)).to_dict()
                return list(zip(*(got[n] for n in names), strict=True))

            cache = self._items[key] = TTLCache(self.ttl_s, load, self.max_items)
        return cache

    def user_values(self, user: Any, refs: Sequence[str]) -> dict[str, Any]:
        """Return the user's value of each user-keyed reference, by reference, in one lookup."""
        if not refs:
            return {}
        got = self.store.get_online_features([{self.user_key: user}], list(refs)).to_dict()
        return {r: got[feature_name(r)][0] for r in refs}

    def lookup(self, user: Any, items: Sequence[Any], refs: Sequence[str],
               known: dict[str, Any] | None = None) -> dict[str, list[Any]]:
        """Return columns by feature name for the candidates; ``known`` holds user values already read, by reference."""
        if not refs or not items:
            return {}
        user_refs, item_refs, row_refs = self.split(refs)
        n = len(items)
        known = known or {}
        values = {**{r: known[r] for r in user_refs if r in known},
                  **self.user_values(user, [r for r in user_refs if r not in known])}
        columns: dict[str, list[Any]] = {feature_name(r): [values[r]] * n for r in user_refs}
        if item_refs:
            tuples = self.item_cache(item_refs).get_many(items)
            for name, col in zip([feature_name(r) for r in item_refs], zip(*tuples, strict=True), strict=True):
                columns[name] = list(col)
        if row_refs:
            rows = [{self.user_key: user, self.item_key: i} for i in items]
            got = self.store.get_online_features(rows, list(row_refs)).to_dict()
            columns.update({feature_name(r): got[feature_name(r)] for r in row_refs})
        return columns


def feature_name(ref: str) -> str:
    """Return the column a "view:feature" reference is returned under."""
    return ref.split(":", 1)[1] if ":" in ref else ref
