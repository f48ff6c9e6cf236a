"""Built-in retrieval sources: each reads the workspace's vector store or online store and returns scored items."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter, neg
from typing import Any

from forgeml.config import setting
from forgeml.contracts import RecommendQuery
from forgeml.errors import ConfigError


def _split(ref: str, what: str) -> tuple[str, str]:
    view, sep, feature = ref.partition(":")
    if not sep or not view or not feature:
        raise ConfigError(f"{what} must be a \"view:feature\" reference, got {ref!r}")
    return view, feature


class _OnlineLists:
    """Reads one feature, keyed by the view's join key, for several keys in one lookup; held cache_s seconds."""

    def __init__(self, ref: str, what: str, workspace: Any, cache_s: float = 0.0):
        from forgeml.features import store_for
        from forgeml.recsys.cache import TTLCache

        self.ref = ref
        self.view, self.feature = _split(ref, what)
        self.store = store_for(workspace)
        self.cache = TTLCache(cache_s, self._load)

    @property
    def inline(self) -> bool:
        """Whether reads are mostly answered from memory (a cache is kept)."""
        return self.cache.ttl_s > 0

    def read(self, keys: Sequence[Any]) -> list[Any]:
        """Return the feature's value per key (None where the store has none)."""
        if not keys:
            return []
        return self.cache.get_many(keys)

    def _load(self, keys: list[Any]) -> list[Any]:
        from forgeml.recsys.cache import frozen

        key = self.store.get_feature_view(self.view).join_keys[0]
        got = self.store.get_online_features([{key: k} for k in keys], [self.ref]).to_dict()
        return [frozen(v) for v in got[self.feature]]  # lists held as tuples: the collector skips them


CACHE_HELP = ("Seconds a read value is held in memory before the online store is read again (the staleness of "
              "this source's answers; 0: read on every request).")


def _top(scores: dict[Any, float], exclude: set[Any], k: int) -> list[tuple[Any, float]]:
    """Return the k best (item, score) pairs not excluded; ``scores`` is the caller's own and loses excluded items."""
    # a stable sort on the score alone: ties keep the order the items were found in, which is deterministic
    if len(exclude) <= len(scores):  # a few excluded items are dropped from the dict rather than filtered
        for item in exclude:
            scores.pop(item, None)
        kept: Any = scores.items()
    else:
        kept = [(i, s) for i, s in scores.items() if i not in exclude]
    # the C sort beats heapq's Python loop until thousands of items (both keep ties in found order)
    return heapq.nlargest(k, kept, key=_SCORE) if len(kept) > 2000 and k < len(kept) // 16 else \
        sorted(kept, key=_SCORE, reverse=True)[:k]


_SCORE = itemgetter(1)


# ---------------------------------------------------------------- ann
@dataclass
class AnnSettings:
    """Nearest neighbours of the user in an item-embedding table."""

    view: str = setting("", "Item-embedding feature view searched (its embedding feature lives in the vector store).")
    feature: str = setting("", "The view's embedding feature (default: its first).")
    user_vector: str = setting("", "\"view:feature\" holding each user's embedding; a user without one is served "
                                   "the mean embedding of their recent items.")
    model: str = setting("", "Retrieval model URI (two_tower@production) whose registered embedding table is searched "
                             "instead of the view; promoting a new version switches tables.")
    filter: str = setting("", "SQL predicate over the table's columns applied before the search (e.g. \"in_stock\").")
    recent_items: int = setting(5, "Recent items averaged for a user without an embedding.")
    in_memory: bool = setting(True, "With model: hold the registered table's user and item vectors in memory "
                                    "(read once when the table switches) instead of reading them per request.")
    exact_up_to: int = setting(200_000, "With in_memory: a table of up to this many items is searched exactly in "
                                        "memory, cheaper than an index query at that size; larger ones, and any "
                                        "search with a filter, query the vector store's index. 0: always the index.",
                               low=0)


@dataclass(frozen=True)
class _Followed:
    """The registered table a model URI points at, with its vectors in memory when asked for."""

    table: Any
    users: Any = None
    items: Any = None


class AnnRetriever:
    """Searches the item-embedding table for the items nearest to the user's vector."""

    name = "ann"

    def __init__(self, settings: AnnSettings, workspace: Any):
        from forgeml.features import store_for

        if not settings.view and not settings.model:
            raise ConfigError("ann source: give view = \"<item embedding view>\" or model = \"<name@stage>\"")
        self.settings = settings
        self.workspace = workspace
        self.store = store_for(workspace)
        self.followed: _Followed | None = None  # the registered embedding table, when following a model URI
        self.users = _OnlineLists(settings.user_vector, "ann user_vector", workspace) if settings.user_vector else None

    @property
    def table(self) -> Any:
        """The registered embedding table searched now (None when the source searches a view)."""
        followed = self.followed
        return None if followed is None else followed.table

    @property
    def inline(self) -> bool:
        """Whether a search runs in memory (the recommender then calls it in the request's own thread)."""
        followed = self.followed
        return (followed is not None and followed.items is not None and not self.settings.filter
                and len(followed.items.rows) <= self.settings.exact_up_to)

    def refresh(self) -> bool:
        """Follow the model URI's registered embedding table; return whether it switched."""
        if not self.settings.model:
            return False
        from forgeml.recsys.embeddings import load_vectors, registered_table

        table = registered_table(self.settings.model, self.workspace)
        held = self.followed
        if held is not None and table.version == held.table.version:
            if held.items is None or self.workspace.vector_store.count(table.table) == len(held.items.rows):
                return False
            # items were added to the table (cold-start items): reload the vectors, keep the users
            self.followed = _Followed(table, held.users, load_vectors(self.workspace, table.table, table.key))
            return True
        users = items = None
        if self.settings.in_memory:  # read before the switch: requests keep the old table meanwhile
            items = load_vectors(self.workspace, table.table, table.key)
            if table.user_table:
                users = load_vectors(self.workspace, table.user_table, table.user_key)
        self.followed = _Followed(table, users, items)
        return True

    def _item_vectors(self, items: Sequence[Any], followed: _Followed | None) -> list[Any]:
        if followed is not None:
            if followed.items is not None:
                return followed.items.get(items)
            return followed.table.vectors(self.workspace, items)
        fv = self.store.get_feature_view(self.settings.view)
        feature = self.settings.feature or fv.embedding_features[0].name
        got = self.store.get_online_features([{fv.join_keys[0]: i} for i in items], [f"{fv.name}:{feature}"])
        return got.to_dict()[feature]

    def _query_vector(self, q: RecommendQuery, followed: _Followed | None) -> Any:
        import numpy as np

        if followed is not None and q.user is not None:  # the user tower of the same version as the items
            if followed.users is not None:
                vector = followed.users.get([q.user])[0]
            else:
                vector = followed.table.user_vector(self.workspace, q.user)
            if vector is not None:
                return vector
        if self.users is not None and q.user is not None:
            vector = self.users.read([q.user])[0]
            if vector is not None:
                return vector
        recent = q.recent[:self.settings.recent_items]
        vectors = [v for v in (self._item_vectors(recent, followed) if recent else []) if v is not None]
        if vectors:
            return np.mean(np.asarray(vectors, dtype=np.float32), axis=0).tolist()
        return followed.table.cold_start if followed is not None else None

    def retrieve(self, query: RecommendQuery, k: int) -> list[tuple[Any, float]]:
        """Return the k items nearest to the user's vector, scored by negated distance."""
        if self.settings.model and self.followed is None:
            self.refresh()
        followed = self.followed  # one table for the whole request, even when a swap lands meanwhile
        table = None if followed is None else followed.table
        vector = self._query_vector(query, followed)
        if vector is None:
            return []
        want = k + len(query.exclude)
        filter_ = self.settings.filter or None
        if followed is not None and followed.items is not None and not filter_ \
                and len(followed.items.rows) <= self.settings.exact_up_to:
            metric = getattr(self.workspace.vector_store, "metric", "l2")
            keys, distances = followed.items.nearest(vector, want, metric)  # nearest first already
            exclude = query.exclude
            pairs = zip(keys, map(neg, distances))
            return list(pairs)[:k] if not exclude else [p for p in pairs if p[0] not in exclude][:k]
        if table is not None:
            found = table.search(self.workspace, vector, want, filter_)
            key = table.key
        else:
            found = self.store.nearest(self.settings.view, vector, want, filter=filter_,
                                       feature=self.settings.feature or None)
            key = self.store.get_feature_view(self.settings.view).join_keys[0]
        items = found.column(key).to_pylist()
        distances = found.column("_distance").to_pylist()
        return _top({i: -float(d) for i, d in zip(items, distances, strict=True)}, query.exclude, k)


# ---------------------------------------------------------------- co-occurrence
@dataclass
class CooccurrenceSettings:
    """Items listed with the user's recent items ("bought X, also bought Y")."""

    feature: str = setting("", "\"view:feature\": a list of related items per item, most related first.")
    recent_items: int = setting(5, "How many of the user's most recent items are followed.")
    decay: float = setting(0.7, "Weight of each older recent item relative to the next newer one.", low=0, high=1)
    cache_s: float = setting(30.0, CACHE_HELP, low=0)


class CooccurrenceRetriever:
    """Merges the co-occurrence lists of the user's recent items, newer items weighing more."""

    name = "cooccurrence"

    def __init__(self, settings: CooccurrenceSettings, workspace: Any):
        self.settings = settings
        self.lists = _OnlineLists(settings.feature, "cooccurrence feature", workspace, settings.cache_s)

    @property
    def inline(self) -> bool:
        """Whether its lists are held in memory (the recommender then calls it in the request's own thread)."""
        return self.lists.inline

    def retrieve(self, query: RecommendQuery, k: int) -> list[tuple[Any, float]]:
        """Return the items most often seen with the recent ones."""
        recent = query.recent[:self.settings.recent_items]
        scores: dict[Any, float] = {}
        for age, related in enumerate(self.lists.read(recent)):
            weight = self.settings.decay ** age
            get = scores.get
            for pos, item in enumerate(related or (), 1):
                scores[item] = get(item, 0.0) + weight / pos
        return _top(scores, query.exclude | set(recent), k)


# ---------------------------------------------------------------- popularity
@dataclass
class PopularitySettings:
    """The most popular items, a list per segment kept fresh by a pipeline (forgeml.recsys.refresh_popularity)."""

    feature: str = setting("", "\"view:feature\": a list of items, most popular first, keyed by segment.")
    segment: str = setting("all", "The segment read when the request's context names none.")
    segment_from: str = setting("", "Context field whose value picks the segment (e.g. \"country\").")
    cache_s: float = setting(30.0, CACHE_HELP, low=0)


class PopularityRetriever:
    """Returns the head of the popularity list of the request's segment."""

    name = "popularity"

    def __init__(self, settings: PopularitySettings, workspace: Any):
        self.settings = settings
        self.lists = _OnlineLists(settings.feature, "popularity feature", workspace, settings.cache_s)

    @property
    def inline(self) -> bool:
        """Whether its lists are held in memory (the recommender then calls it in the request's own thread)."""
        return self.lists.inline

    def retrieve(self, query: RecommendQuery, k: int) -> list[tuple[Any, float]]:
        """Return the k most popular items not excluded, scored by rank."""
        segment = query.context.get(self.settings.segment_from) if self.settings.segment_from else None
        items = self.lists.read([segment if segment is not None else self.settings.segment])[0]
        if not items and segment is not None:
            items = self.lists.read([self.settings.segment])[0]
        out = []
        for pos, item in enumerate(items or []):
            if item not in query.exclude:
                out.append((item, 1.0 / (1 + pos)))
                if len(out) == k:
                    break
        return out


# ---------------------------------------------------------------- content
@dataclass
class ContentSettings:
    """Top items of the categories the user looked at lately."""

    attribute: str = setting("", "\"view:feature\" giving each item's category (keyed by item).")
    by_value: str = setting("", "\"view:feature\": a list of top items per category, best first (keyed by category).")
    recent_items: int = setting(5, "How many of the user's most recent items give categories.")
    cache_s: float = setting(30.0, CACHE_HELP, low=0)


class ContentRetriever:
    """Interleaves the top lists of the recent items' categories, the most frequent category first."""

    name = "content"

    def __init__(self, settings: ContentSettings, workspace: Any):
        self.settings = settings
        self.attributes = _OnlineLists(settings.attribute, "content attribute", workspace, settings.cache_s)
        self.lists = _OnlineLists(settings.by_value, "content by_value", workspace, settings.cache_s)

    @property
    def inline(self) -> bool:
        """Whether its lists are held in memory (the recommender then calls it in the request's own thread)."""
        return self.lists.inline and self.attributes.inline

    def retrieve(self, query: RecommendQuery, k: int) -> list[tuple[Any, float]]:
        """Return items of the same categories as the recent items."""
        recent = query.recent[:self.settings.recent_items]
        counts: dict[Any, int] = {}
        for value in self.attributes.read(recent):
            if value is not None:
                counts[value] = counts.get(value, 0) + 1
        if not counts:
            return []
        order = sorted(counts, key=lambda v: (-counts[v], str(v)))
        lists = self.lists.read(order)
        scores: dict[Any, float] = {}
        get = scores.get
        for value, items in zip(order, lists, strict=True):
            share = counts[value] / len(recent)
            items = items or ()
            if scores.keys().isdisjoint(items) and len(set(items)) == len(items):  # the usual case, in C loops
                scores.update(zip(items, map(share.__truediv__, range(1, len(items) + 1))))
                continue
            for pos, item in enumerate(items, 1):
                score = share / pos
                held = get(item)
                if held is None or score > held:  # an item in several lists keeps its best score
                    scores[item] = score
        return _top(scores, query.exclude | set(recent), k)

