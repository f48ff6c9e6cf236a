"""Merging the sources' answers: first finder keeps an item, later finders are listed, excluded items dropped.

A request merges hundreds of candidates but returns a few: :class:`Merged` holds them as columns,
and a :class:`~forgeml.contracts.Candidate` is made only for the rows the rules see or return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import compress, repeat
from operator import itemgetter, not_
from typing import Any

from forgeml.contracts import Candidate

__all__ = ["Merged", "merge", "picker"]


def merge(found: Iterable[tuple[str, list[tuple[Any, float]]]], exclude: set[Any], limit: int) -> list[Candidate]:
    """Merge source answers in source order: first finder keeps the item, later finders are listed; drop excluded."""
    merged = Merged.of(found, exclude, limit)
    return [merged.candidate(row, float(score)) for row, score in enumerate(merged.scores)]


class Merged:
    """Merged candidates as columns: a request ranks hundreds of them but returns a few, made Candidates only then."""

    __slots__ = ("items", "scores", "found_by", "also")

    def __init__(self, items: list[Any], scores: list[Any], found_by: list[str], also: dict[int, list[str]]):
        self.items = items
        self.scores = scores
        """Each item's score from the source that found it first."""
        self.found_by = found_by
        self.also = also
        """The later finders of the rows that several sources found."""

    @classmethod
    def of(cls, found: Iterable[tuple[str, list[tuple[Any, float]]]], exclude: set[Any], limit: int) -> Merged:
        """Merge in source order (first finder keeps the item), drop excluded items, keep at most ``limit``."""
        rows: dict[Any, int] = {}
        items: list[Any] = []
        scores: list[Any] = []
        found_by: list[str] = []
        also: dict[int, list[str]] = {}
        for source, pairs in found:
            keys = list(map(_FIRST, pairs))
            if len(set(keys)) < len(keys) or not exclude.isdisjoint(keys):  # the contract says neither happens
                cls._one_by_one(source, pairs, exclude, limit, rows, items, scores, found_by, also)
                continue
            # the usual answer, in C loops: items an earlier source found list this one too, the rest are new
            for item in rows.keys() & keys:
                row = rows[item]
                if found_by[row] != source:
                    later = also.setdefault(row, [])
                    if source not in later:
                        later.append(source)
            new = list(compress(pairs, map(not_, map(rows.__contains__, keys))))[:max(0, limit - len(items))]
            rows.update(zip(map(_FIRST, new), range(len(items), len(items) + len(new))))
            items.extend(map(_FIRST, new))
            scores.extend(map(_SECOND, new))
            found_by.extend(repeat(source, len(new)))
        return cls(items, scores, found_by, also)

    @staticmethod
    def _one_by_one(source: str, pairs: list[tuple[Any, float]], exclude: set[Any], limit: int, rows: dict[Any, int],
                    items: list[Any], scores: list[Any], found_by: list[str], also: dict[int, list[str]]) -> None:
        for item, score in pairs:
            row = rows.get(item)
            if row is None:  # an excluded item is never merged, so only a new item needs the check
                if item not in exclude and len(items) < limit:
                    rows[item] = len(items)
                    items.append(item)
                    scores.append(score)
                    found_by.append(source)
            elif found_by[row] != source:
                later = also.setdefault(row, [])
                if source not in later:
                    later.append(source)

    def candidate(self, row: int, score: float, features: dict[str, Any] | None = None) -> Candidate:
        """Return one merged row as a Candidate."""
        first = self.found_by[row]
        later = self.also.get(row)
        return Candidate(self.items[row], score, first, [first, *later] if later else [first],
                         {} if features is None else features)


_FIRST, _SECOND = itemgetter(0), itemgetter(1)


def picker(rows: list[int]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """Return a function taking those rows of a column, in that order (a C loop, not a Python one)."""
    if len(rows) == 1:
        only = rows[0]
        return lambda column: (column[only],)
    return itemgetter(*rows)  # type: ignore[return-value]
