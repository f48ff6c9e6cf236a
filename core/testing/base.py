"""The shape every store suite shares: an ``open_store`` fixture the author gives, and the store it opens."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from forgeml.testing.process import ProviderOpener, close, registered


class StoreSuite:
    """Base of the store suites: subclasses name the kind of store in ``kind``."""

    kind = "store"

    @pytest.fixture
    def open_store(self) -> Callable[[], Any]:
        """A picklable callable opening the store under test over the same data: override it."""
        pytest.fail(f"define an `open_store` fixture returning a picklable callable that opens your {self.kind} "
                    "over the same data at each call (see forgeml.testing.process)", pytrace=False)

    @pytest.fixture
    def store(self, open_store: Callable[[], Any]) -> Iterator[Any]:
        """The store under test, opened through ``open_store`` and closed after the test."""
        store = open_store()
        yield store
        close(store)

    @pytest.fixture
    def table(self) -> str:
        """A table or view name no other test uses, so a shared server needs no cleanup between tests."""
        return f"conf_{uuid.uuid4().hex[:10]}"


def each_provider(layer: str, needs: dict[str, Callable[[pytest.FixtureRequest], dict[str, Any]]] | None = None,
                  ) -> Callable[..., Any]:
    """A fixture parametrized over every registered provider of a layer, returning its ProviderOpener.

    ``needs`` maps a provider name to a function giving its settings from the test's fixtures
    (a server URL, a remote root); the rest open with their documented defaults.
    """
    needs = needs or {}

    @pytest.fixture(params=registered(layer))
    def opener(self: Any, request: pytest.FixtureRequest, tmp_path: Path) -> ProviderOpener:
        name = request.param
        settings = needs[name](request) if name in needs else {}
        return ProviderOpener(str(tmp_path / f"ws-{uuid.uuid4().hex[:6]}"), layer, name, settings)

    return opener
