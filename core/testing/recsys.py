"""Conformance suites for recommender retrieval sources and re-ranking rules.

:class:`RetrieverSuite` (contract :class:`forgeml.contracts.Retriever`): subclass it as ``Test...`` and
give it a ``case`` fixture returning ``(retriever, query)``, a query for which the source finds at
least three items with k = 10. Rules: at most k (item, float score) pairs, best first, no item
twice; excluded items never come back; a smaller k is the head of a larger one; the same query
gives the same answer; a user and items the source knows nothing about give a list, not an error.

:class:`RerankerSuite` (contract :class:`forgeml.contracts.Reranker`): give it a ``case`` fixture
returning ``(rule, query, candidates)``, ranked candidates the rule changes. Rules: only the given
candidates come back, none repeated; the input list and its candidates are left as they were; the
same input gives the same answer; no candidates give an empty list.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from forgeml.contracts import Candidate, RecommendQuery, Reranker, Retriever

UNKNOWN_USER = "__forgeml_unknown_user__"
UNKNOWN_ITEM = "__forgeml_unknown_item__"


def _pairs(retriever: Any, query: RecommendQuery, k: int) -> list[tuple[Any, float]]:
    got = retriever.retrieve(query, k)
    assert isinstance(got, list), f"retrieve must return a list, got {type(got).__name__}"
    assert len(got) <= k, f"asked for {k} items, got {len(got)}"
    items = []
    for pair in got:
        assert isinstance(pair, tuple) and len(pair) == 2, f"each result is an (item, score) pair, got {pair!r}"
        assert isinstance(pair[1], float), f"scores are floats, got {pair[1]!r}"
        items.append(pair[0])
    assert len(set(items)) == len(items), f"an item came back twice: {items}"
    scores = [s for _, s in got]
    assert scores == sorted(scores, reverse=True), f"results must be best first, got scores {scores}"
    return got


class RetrieverSuite:
    """Tests every retrieval source must pass; subclass it and define a ``case`` fixture."""

    @pytest.fixture
    def case(self) -> tuple[Any, RecommendQuery]:
        """(retriever, query it finds at least three items for): override it."""
        pytest.fail("define a `case` fixture returning (retriever, query)", pytrace=False)

    def test_implements_the_contract(self, case: tuple[Any, RecommendQuery]) -> None:
        """The source has a name and a retrieve() method."""
        assert isinstance(case[0], Retriever)
        assert isinstance(case[0].name, str) and case[0].name

    def test_returns_scored_items_best_first(self, case: tuple[Any, RecommendQuery]) -> None:
        """At most k distinct (item, score) pairs, highest score first, and at least three for the case."""
        got = _pairs(*case, 10)
        assert len(got) >= 3, f"the case should find at least three items, found {got}"

    def test_excluded_items_never_come_back(self, case: tuple[Any, RecommendQuery]) -> None:
        """Items in the query's exclude set are left out."""
        retriever, query = case
        first = [item for item, _ in _pairs(retriever, query, 10)]
        narrowed = dataclasses.replace(query, exclude=set(query.exclude) | set(first[:2]))
        again = [item for item, _ in _pairs(retriever, narrowed, 10)]
        assert not set(first[:2]) & set(again), f"excluded {first[:2]} came back in {again}"

    def test_a_smaller_k_is_the_head_of_a_larger_one(self, case: tuple[Any, RecommendQuery]) -> None:
        """The top 2 are the first two of the top 10."""
        retriever, query = case
        top = [item for item, _ in _pairs(retriever, query, 10)]
        assert [item for item, _ in _pairs(retriever, query, 2)] == top[:2]

    def test_the_same_query_gives_the_same_answer(self, case: tuple[Any, RecommendQuery]) -> None:
        """Retrieval is deterministic for fixed data."""
        assert _pairs(*case, 10) == _pairs(*case, 10)

    def test_an_unknown_user_and_items_give_a_list_not_an_error(self, case: tuple[Any, RecommendQuery]) -> None:
        """Cold start: a user and recent items never seen are answered (possibly with nothing)."""
        query = RecommendQuery(UNKNOWN_USER, [UNKNOWN_ITEM], dict(case[1].context), set(), 10)
        _pairs(case[0], query, 10)


def _snapshot(candidates: list[Candidate]) -> list[tuple[Any, float, str, tuple[str, ...], tuple]]:
    return [(c.item, c.score, c.source, tuple(c.sources), tuple(sorted(c.features.items(), key=str)))
            for c in candidates]


class RerankerSuite:
    """Tests every re-ranking rule must pass; subclass it and define a ``case`` fixture."""

    @pytest.fixture
    def case(self) -> tuple[Any, RecommendQuery, list[Candidate]]:
        """(rule, query, ranked candidates the rule changes): override it."""
        pytest.fail("define a `case` fixture returning (rule, query, candidates)", pytrace=False)

    def test_implements_the_contract(self, case: tuple[Any, RecommendQuery, list[Candidate]]) -> None:
        """The rule has a name and a rerank() method."""
        assert isinstance(case[0], Reranker)
        assert isinstance(case[0].name, str) and case[0].name

    def test_returns_only_given_candidates_once_each(self, case: tuple[Any, RecommendQuery, list[Candidate]]) -> None:
        """No candidate is invented or repeated."""
        rule, query, candidates = case
        got = rule.rerank(query, list(candidates))
        assert isinstance(got, list) and all(isinstance(c, Candidate) for c in got)
        items = [c.item for c in got]
        assert len(set(items)) == len(items), f"a candidate came back twice: {items}"
        assert set(items) <= {c.item for c in candidates}, f"invented items: {set(items) - {c.item for c in candidates}}"

    def test_changes_the_case(self, case: tuple[Any, RecommendQuery, list[Candidate]]) -> None:
        """The case is one the rule acts on: the order, the members or the scores differ."""
        rule, query, candidates = case
        assert _snapshot(rule.rerank(query, list(candidates))) != _snapshot(candidates)

    def test_leaves_its_input_alone(self, case: tuple[Any, RecommendQuery, list[Candidate]]) -> None:
        """The list and the candidates passed in are unchanged afterwards."""
        rule, query, candidates = case
        before = _snapshot(candidates)
        rule.rerank(query, candidates)
        assert _snapshot(candidates) == before

    def test_the_same_input_gives_the_same_answer(self, case: tuple[Any, RecommendQuery, list[Candidate]]) -> None:
        """Rules are deterministic."""
        rule, query, candidates = case
        assert _snapshot(rule.rerank(query, list(candidates))) == _snapshot(rule.rerank(query, list(candidates)))

    def test_no_candidates_give_an_empty_list(self, case: tuple[Any, RecommendQuery, list[Candidate]]) -> None:
        """An empty input is answered with an empty list."""
        assert case[0].rerank(case[1], []) == []
