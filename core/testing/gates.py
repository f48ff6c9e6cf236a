"""Conformance suite for promotion gates (contract: :class:`forgeml.contracts.PromotionGate`).

Subclass :class:`PromotionGateSuite` as ``Test...`` and give it a ``cases`` fixture returning
``(gate, passing_context, failing_context)``: your gate and two promotion contexts
(:class:`forgeml.registry.promotion.PromotionContext`) it must pass and block. Rules:

- ``check`` returns a GateResult: ``passed`` a real bool, ``gate`` and ``message`` non-empty text
  (the message says why, for the person whose promotion was blocked), ``details`` JSON-serializable;
- the verdict depends on the context, not on the gate's history: checking again gives the same one.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from forgeml.contracts import GateResult, PromotionGate


def _verdict(gate: Any, context: Any) -> GateResult:
    result = gate.check(context)
    assert isinstance(result, GateResult), f"check must return a GateResult, got {result!r}"
    assert isinstance(result.passed, bool), f"passed must be a bool, got {result.passed!r}"
    assert isinstance(result.gate, str) and result.gate, f"gate must name the gate, got {result.gate!r}"
    assert isinstance(result.message, str) and result.message, f"a verdict needs a message, got {result.message!r}"
    try:
        json.dumps(result.details)
    except (TypeError, ValueError) as e:
        pytest.fail(f"details must be JSON-serializable (they are stored with the promotion): {e}", pytrace=False)
    return result


class PromotionGateSuite:
    """Tests every promotion gate must pass; subclass it and define a ``cases`` fixture."""

    @pytest.fixture
    def cases(self) -> tuple[Any, Any, Any]:
        """(gate, context it passes, context it blocks): override it."""
        pytest.fail("define a `cases` fixture returning (gate, passing_context, failing_context)", pytrace=False)

    def test_implements_the_contract(self, cases: tuple[Any, Any, Any]) -> None:
        """The gate has a name and a check() method."""
        gate = cases[0]
        assert isinstance(gate, PromotionGate)
        assert isinstance(gate.name, str) and gate.name

    def test_passes_the_passing_context(self, cases: tuple[Any, Any, Any]) -> None:
        """The passing context gets passed=True with a message."""
        result = _verdict(cases[0], cases[1])
        assert result.passed is True, f"expected the gate to pass, got {result}"

    def test_blocks_the_failing_context_saying_why(self, cases: tuple[Any, Any, Any]) -> None:
        """The failing context gets passed=False with a message."""
        result = _verdict(cases[0], cases[2])
        assert result.passed is False, f"expected the gate to block, got {result}"

    def test_the_verdict_does_not_drift(self, cases: tuple[Any, Any, Any]) -> None:
        """Checking the same contexts again, in the other order, gives the same verdicts."""
        gate, passing, failing = cases
        first = (_verdict(gate, failing).passed, _verdict(gate, passing).passed)
        assert first == (False, True), f"expected (blocked, passed) on a second look, got {first}"
