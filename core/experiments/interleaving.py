"""Team-draft interleaving for ranking endpoints (Radlinski, Kurup and Joachims, 2008).

Two rankers' lists are merged as two captains pick teams: the captain with fewer picks (a coin toss,
seeded by the query key, breaks ties) adds its highest item not yet shown. Clicks credit the team
that contributed the clicked item; over many queries the ranker whose team wins more often is better.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from forgeml.errors import ValidationError
from forgeml.serving.arms import unit_hash


@dataclass
class Interleaved:
    """The merged list and which ranker contributed each position ("a" or "b")."""

    items: list[Hashable]
    teams: list[str]


def team_draft(ranking_a: Sequence[Hashable], ranking_b: Sequence[Hashable], key: str = "",
               length: int | None = None) -> Interleaved:
    """Interleave two rankings; the same key always gives the same merge (the coin is hashed from it)."""
    limit = length if length is not None else len(set(ranking_a) | set(ranking_b))
    items: list[Hashable] = []
    teams: list[str] = []
    shown: set[Hashable] = set()
    ia = ib = picks_a = picks_b = 0
    flip = 0
    while len(items) < limit:
        rest_a = any(x not in shown for x in ranking_a[ia:])
        rest_b = any(x not in shown for x in ranking_b[ib:])
        if not rest_a and not rest_b:
            break
        if picks_a < picks_b:
            a_turn = True
        elif picks_b < picks_a:
            a_turn = False
        else:
            a_turn = unit_hash("team-draft", f"{key}\x00{flip}") < 0.5
            flip += 1
        if a_turn and not rest_a:
            a_turn = False
        elif not a_turn and not rest_b:
            a_turn = True
        if a_turn:
            while ranking_a[ia] in shown:
                ia += 1
            item, team = ranking_a[ia], "a"
            picks_a += 1
        else:
            while ranking_b[ib] in shown:
                ib += 1
            item, team = ranking_b[ib], "b"
            picks_b += 1
        shown.add(item)
        items.append(item)
        teams.append(team)
    return Interleaved(items, teams)


def credit(merged: Interleaved, clicked: Iterable[Hashable]) -> str:
    """Return the query's winner from its clicks: "a", "b" or "tie"."""
    team_of = dict(zip(merged.items, merged.teams, strict=True))
    clicks = [team_of[c] for c in clicked if c in team_of]
    a, b = clicks.count("a"), clicks.count("b")
    return "a" if a > b else "b" if b > a else "tie"


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
