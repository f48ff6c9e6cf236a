"""Conformance suite for alert notifiers (contract: :class:`forgeml.contracts.Notifier`).

Subclass :class:`NotifierSuite` as ``Test...`` and give it three fixtures: ``notifier`` (delivering
somewhere the test can look), ``delivered`` (a callable returning the alerts that arrived there, as
dicts, oldest first) and ``failing_notifier`` (the same kind of notifier pointed at a destination
that refuses or does not exist). Rules:

- every field of the alert arrives unchanged: text with quotes, newlines and non-ASCII, None,
  numbers, nested details, the ISO 8601 UTC ``fired_at``;
- alerts arrive once each, in the order sent;
- a delivery that fails raises ForgeError (the alert stays stored and is reported as undelivered),
  never another exception and never silence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from forgeml.contracts import Notifier
from forgeml.errors import ForgeError


def alert(n: int = 1) -> dict[str, Any]:
    """A stored alert as a notifier receives it."""
    return {"id": n, "rule": "auc_drop", "metric": "auc", "subject": "churn@production", "value": 0.61,
            "threshold": 0.7, "severity": "critical", "message": f'AUC "fell" to 0.61\nZürich ✓ #{n}',
            "fired_at": "2024-05-01T12:30:00+00:00", "pipeline": None,
            "details": {"window": "1h", "rows": 1200, "columns": ["a", "b"]}}


class NotifierSuite:
    """Tests every notifier must pass; subclass it and define ``notifier``, ``delivered`` and ``failing_notifier``."""

    @pytest.fixture
    def notifier(self) -> Any:
        """The notifier under test: override it."""
        pytest.fail("define a `notifier` fixture returning your notifier", pytrace=False)

    @pytest.fixture
    def delivered(self) -> Callable[[], list[dict[str, Any]]]:
        """A callable returning the alerts that arrived, oldest first: override it."""
        pytest.fail("define a `delivered` fixture returning a callable that lists the alerts that arrived",
                    pytrace=False)

    @pytest.fixture
    def failing_notifier(self) -> Any:
        """A notifier of the same kind whose destination refuses: override it."""
        pytest.fail("define a `failing_notifier` fixture returning your notifier pointed at a refusing destination",
                    pytrace=False)

    def test_implements_the_contract(self, notifier: Any) -> None:
        """The notifier has a name and notify()."""
        assert isinstance(notifier, Notifier)
        assert isinstance(notifier.name, str) and notifier.name

    def test_every_field_arrives_unchanged(self, notifier: Any, delivered: Callable[[], list[dict[str, Any]]]) -> None:
        """The delivered alert equals the one sent, field by field."""
        sent = alert()
        notifier.notify(sent)
        got = delivered()
        assert len(got) == 1, f"expected one delivered alert, got {len(got)}: {got}"
        for key, value in sent.items():
            assert got[0].get(key) == value, f"field {key!r}: expected {value!r}, got {got[0].get(key)!r}"

    def test_alerts_arrive_once_in_order(self, notifier: Any, delivered: Callable[[], list[dict[str, Any]]]) -> None:
        """Three alerts arrive once each, in the order sent."""
        for n in (1, 2, 3):
            notifier.notify(alert(n))
        ids = [a.get("id") for a in delivered()]
        assert ids == [1, 2, 3], f"expected alerts [1, 2, 3] in order, got {ids}"

    def test_a_failed_delivery_raises_forge_error(self, failing_notifier: Any) -> None:
        """A destination that refuses makes notify raise ForgeError."""
        with pytest.raises(ForgeError):
            failing_notifier.notify(alert())
