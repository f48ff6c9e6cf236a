"""Built-in re-ranking rules: suppress purchased items, category diversity, sponsored slots, freshness boost."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

from forgeml.config import setting
from forgeml.contracts import Candidate, RecommendQuery
from forgeml.errors import ConfigError


@dataclass
class SuppressSettings:
    """Drop items the user already bought."""

    feature: str = setting("", "\"view:feature\": a list of the user's purchased items, keyed by user; empty: only "
                               "the request's exclude list is applied.")


class SuppressPurchased:
    """Removes the user's purchased items (read online in one lookup) and the request's excluded items."""

    name = "suppress_purchased"

    def __init__(self, settings: SuppressSettings, workspace: Any):
        from forgeml.features import store_for

        self.settings = settings
        self.store = store_for(workspace)
        if settings.feature and ":" not in settings.feature:
            raise ConfigError(f"suppress_purchased: feature must be a \"view:feature\" reference, got "
                              f"{settings.feature!r}")
        self.user_features = [settings.feature] if settings.feature else []
        """Read by the recommender with the user's other features and passed in the query."""

    def _purchased(self, user: Any, known: dict[str, Any] | None = None) -> set[Any]:
        if not self.settings.feature or user is None:
            return set()
        if known and self.settings.feature in known:  # read with the user's other features for this request
            return set(known[self.settings.feature] or [])
        view, _, feature = self.settings.feature.partition(":")
        key = self.store.get_feature_view(view).join_keys[0]
        got = self.store.get_online_features([{key: user}], [self.settings.feature]).to_dict()[feature][0]
        return set(got or [])

    def rerank(self, query: RecommendQuery, candidates: list[Candidate]) -> list[Candidate]:
        """Return the candidates the user has not bought."""
        drop = self._purchased(query.user, query.features) | query.exclude
        return [c for c in candidates if c.item not in drop]


@dataclass
class DiversitySettings:
    """At most a few items per category among the top of the list."""

    attribute: str = setting("category", "Item feature whose values must vary (fetched with the candidates).")
    max_per_value: int = setting(2, "Most items sharing one value among the top `window` items.", low=1)
    window: int = setting(0, "How many top positions the cap applies to (0: the request's n).")


class Diversity:
    """Greedy: walk the ranked list, deferring an item whose value already filled its quota in the window."""

    name = "diversity"

    def __init__(self, settings: DiversitySettings, workspace: Any):
        self.settings = settings

    def rerank(self, query: RecommendQuery, candidates: list[Candidate]) -> list[Candidate]:
        """Return the list with over-represented values pushed below the window."""
        window = self.settings.window or query.n
        counts: dict[Any, int] = {}
        head: list[Candidate] = []
        deferred: list[Candidate] = []
        for c in candidates:
            value = c.features.get(self.settings.attribute)
            if len(head) < window and (value is None or counts.get(value, 0) < self.settings.max_per_value):
                head.append(c)
                if value is not None:
                    counts[value] = counts.get(value, 0) + 1
            else:
                deferred.append(c)
        return head + deferred


@dataclass
class SponsoredSettings:
    """Sponsored items at fixed positions."""

    attribute: str = setting("sponsored", "Boolean item feature marking sponsored items.")
    slots: list[int] = setting([3], "Positions (1 = first) given to the best sponsored items.")
    only_in_slots: bool = setting(True, "Keep sponsored items out of the organic positions.")


class Sponsored:
    """Moves the best-ranked sponsored items into the configured slots."""

    name = "sponsored"

    def __init__(self, settings: SponsoredSettings, workspace: Any):
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in settings.slots):
            raise ConfigError(f"sponsored: slots must be positions of at least 1, got {settings.slots!r}")
        self.settings = settings

    def rerank(self, query: RecommendQuery, candidates: list[Candidate]) -> list[Candidate]:
        """Return organic items with sponsored ones placed at the slots (in slot order, best first)."""
        sponsored = [c for c in candidates if c.features.get(self.settings.attribute) is True]
        organic = [c for c in candidates if c.features.get(self.settings.attribute) is not True]
        out = list(organic)
        placed = set()
        for slot, c in zip(sorted(set(self.settings.slots)), sponsored, strict=False):
            out.insert(min(slot - 1, len(out)), c)
            placed.add(id(c))
        if not self.settings.only_in_slots:
            out.extend(c for c in sponsored if id(c) not in placed)
        return out


_SCORE = attrgetter("score")


@dataclass
class FreshnessSettings:
    """A score boost for new items that halves every half_life_days."""

    attribute: str = setting("created_at", "Item feature holding when the item appeared (timestamp or epoch seconds).")
    weight: float = setting(0.1, "Boost added to the score of a brand-new item.")
    half_life_days: float = setting(7.0, "Age at which the boost is halved.", low=0.001)


class Freshness:
    """Adds weight * 0.5 ** (age / half_life) to each score and re-sorts."""

    name = "freshness"

    def __init__(self, settings: FreshnessSettings, workspace: Any, clock: Any = time.time):
        self.settings = settings
        self.clock = clock

    def _age_days(self, value: Any, now: float) -> float | None:
        if isinstance(value, datetime):
            value = value.timestamp()
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            return None
        return max(0.0, now - float(value)) / 86400

    def rerank(self, query: RecommendQuery, candidates: list[Candidate]) -> list[Candidate]:
        """Return copies of the candidates with boosted scores, highest first (stable for ties)."""
        now = self.clock()
        attribute, weight, half_life = self.settings.attribute, self.settings.weight, self.settings.half_life_days
        out = []
        for c in candidates:
            value = c.features.get(attribute)
            if type(value) is float and value == value or type(value) is int:  # the usual epoch seconds, inline
                boost = weight * 0.5 ** (max(0.0, now - float(value)) / 86400 / half_life)
            else:
                age = self._age_days(value, now)
                boost = 0.0 if age is None else weight * 0.5 ** (age / half_life)
            # a new Candidate sharing the lists, as dataclasses.replace would make, at a fifteenth of its cost
            out.append(Candidate(c.item, c.score + boost, c.source, c.sources, c.features))
        out.sort(key=_SCORE, reverse=True)  # stable: ties keep their ranked order
        return out
