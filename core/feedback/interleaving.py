"""Team-draft interleaving (Radlinski, Kurup and Joachims, 2008): two rankers compared on the same requests.

Two rankers' lists are merged as two captains pick teams: the captain with fewer picks (a coin toss
breaks ties) adds its highest item not yet shown, credited to its team. Clicks credit the team that
contributed the clicked item; over many requests the ranker whose team wins more often is better.
Interleaving needs an order of magnitude fewer requests than an A/B split to see the same difference.

This is the one implementation: the recommendation endpoint serves it, ``forgeml.recsys`` and
``forgeml.experiments`` re-export it, and the experiments analysis reads its logged teams.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from forgeml.errors import ValidationError

_SCALE = 18446744073709551616.0


def _coin(key: str, flip: int) -> bool:
    """A fair coin that the same key and toss number always turn the same way (sticky per query)."""
    digest = hashlib.blake2b(f"{key}\x00{flip}".encode(), digest_size=8, key=b"team-draft").digest()
    return int.from_bytes(digest, "big") / _SCALE < 0.5


@dataclass
class Interleaved:
    """The merged list and which ranker contributed each position ("a" or "b")."""

    items: list[Any]
    teams: list[str]

    def credit(self, clicked: Iterable[Any]) -> dict[str, int]:
        """Return the clicks each ranker earned on this list."""
        hits = set(clicked)
        out = {"a": 0, "b": 0}
        for item, team in zip(self.items, self.teams, strict=True):
            if item in hits:
                out[team] += 1
        return out


def team_draft(ranking_a: Sequence[Hashable], ranking_b: Sequence[Hashable], length: int | None = None,
               key: str = "", rng: random.Random | None = None) -> Interleaved:
    """Interleave two rankings into ``length`` items (default: every distinct item); items never repeat.

    Ties between the captains are broken by a coin hashed from ``key``, so the same key always gives
    the same merge, or by ``rng`` when one is given.
    """
    if length is not None and length < 1:
        raise ValidationError(f"team_draft: n must be at least 1, got {length}")
    limit = length if length is not None else len(set(ranking_a) | set(ranking_b))
    items: list[Any] = []
    teams: list[str] = []
    shown: set[Any] = set()
    cursor = {"a": 0, "b": 0}
    lists = {"a": ranking_a, "b": ranking_b}
    picks = {"a": 0, "b": 0}
    flip = 0

    def has_next(team: str) -> bool:
        ranking = lists[team]
        while cursor[team] < len(ranking) and ranking[cursor[team]] in shown:
            cursor[team] += 1
        return cursor[team] < len(ranking)

    while len(items) < limit:
        rest = {t: has_next(t) for t in ("a", "b")}
        if not rest["a"] and not rest["b"]:
            break
        if picks["a"] != picks["b"]:
            team = "a" if picks["a"] < picks["b"] else "b"
        else:
            team = "a" if (rng.random() < 0.5 if rng is not None else _coin(key, flip)) else "b"
            flip += 1
        if not rest[team]:
            team = "b" if team == "a" else "a"
        item = lists[team][cursor[team]]
        shown.add(item)
        items.append(item)
        teams.append(team)
        picks[team] += 1
    return Interleaved(items, teams)


def credit(merged: Interleaved, clicked: Iterable[Hashable]) -> str:
    """Return the query's winner from its clicks: "a", "b" or "tie"."""
    got = merged.credit(clicked)
    return "a" if got["a"] > got["b"] else "b" if got["b"] > got["a"] else "tie"


@dataclass
class InterleavingTally:
    """Wins, losses and ties of ranker a against ranker b over many interleaved requests."""

    wins: int = 0
    losses: int = 0
    ties: int = 0
    clicks: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0})

    def add(self, shown: Interleaved, clicked: Iterable[Any]) -> None:
        """Count one request's clicks."""
        got = shown.credit(clicked)
        self.clicks["a"] += got["a"]
        self.clicks["b"] += got["b"]
        if got["a"] > got["b"]:
            self.wins += 1
        elif got["b"] > got["a"]:
            self.losses += 1
        else:
            self.ties += 1

    def preference(self) -> float:
        """Return (wins - losses) / (wins + losses): above 0 means a is preferred (0 with no decided request)."""
        decided = self.wins + self.losses
        return (self.wins - self.losses) / decided if decided else 0.0


@dataclass
class InterleavingResult:
    """Wins per ranker over queries, the preference for b in [-1, 1] and a two-sided binomial p-value."""

    wins_a: int
    wins_b: int
    ties: int
    preference_b: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-able values."""
        return asdict(self)


def analyze(outcomes: Iterable[str]) -> InterleavingResult:
    """Test whether one ranker wins more queries than the other (ties left out) with scipy's binomial test."""
    from scipy import stats

    wins = {"a": 0, "b": 0, "tie": 0}
    for o in outcomes:
        if o not in wins:
            raise ValidationError(f"an interleaving outcome is 'a', 'b' or 'tie', got {o!r}")
        wins[o] += 1
    decided = wins["a"] + wins["b"]
    total = decided + wins["tie"]
    p = float(stats.binomtest(wins["b"], decided, 0.5).pvalue) if decided else 1.0
    pref = (wins["b"] - wins["a"]) / total if total else 0.0
    return InterleavingResult(wins["a"], wins["b"], wins["tie"], pref, p)
