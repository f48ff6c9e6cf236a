"""Team-draft interleaving: merged lists, credit per ranker, and a tally that finds the better ranker."""

from __future__ import annotations

import random

import pytest

from forgeml.errors import ValidationError
from forgeml.recsys import InterleavingTally, team_draft


def test_team_draft_alternates_without_repeats_and_credits_each_ranker() -> None:
    """Both rankers contribute about half; shared items appear once; clicks go to the item's team."""
    shown = team_draft([1, 2, 3, 4], [2, 5, 6, 7], 6, rng=random.Random(0))
    assert len(shown.items) == 6 and len(set(shown.items)) == 6
    assert abs(shown.teams.count("a") - shown.teams.count("b")) <= 1
    first_b = shown.items[shown.teams.index("b")]
    assert shown.credit([first_b]) == {"a": 0, "b": 1}
    assert team_draft([1], [1], 5).items == [1]  # both run dry: stops short of n


def test_the_tally_prefers_the_ranker_users_click() -> None:
    """Simulated users click items below 10: ranker a puts them first and wins the tally."""
    rng = random.Random(1)
    tally = InterleavingTally()
    for _ in range(300):
        good = rng.sample(range(10), 5)
        bad = rng.sample(range(10, 40), 5)
        shown = team_draft(good + bad, bad + good, 6, rng=rng)
        tally.add(shown, [i for i in shown.items if i < 10 and rng.random() < 0.5])
    assert tally.preference() > 0.8 and tally.clicks["a"] > 5 * tally.clicks["b"]


def test_n_below_one_is_refused() -> None:
    """A list of no items is a caller's mistake."""
    with pytest.raises(ValidationError, match="n must be"):
        team_draft([1], [2], 0)
