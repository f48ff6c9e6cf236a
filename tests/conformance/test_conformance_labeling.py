"""Every annotation backend and query strategy runs its layer's conformance suite.

The local backend labels through its own ``annotate``; Label Studio runs for real on loopback
(tests/services/label-studio.sh) and is annotated through its REST API, as its labelling UI does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from forgeml.testing import AnnotationBackendSuite, QueryStrategySuite
from forgeml.testing.process import ProviderOpener, registered


class TestQueryStrategies(QueryStrategySuite):
    """Every registered query strategy."""

    @pytest.fixture(params=registered("query_strategies"))
    def strategy(self, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
        return ProviderOpener(str(tmp_path / "ws"), "query_strategies", request.param)()


def label_studio_annotate(backend: Any) -> Callable[[str, str, str], None]:
    """Annotate a Label Studio task by key through the REST API, updating the user's earlier annotation."""

    def annotate(project: str, key: str, label: str) -> None:
        client = backend.client
        task = next(t for t in client.tasks.list(project=int(project), fields="all")
                    if t.data.get("forgeml_key") == key)
        result = [{"from_name": "label", "to_name": "item", "type": "choices", "value": {"choices": [label]}}]
        if task.annotations:
            client.annotations.update(id=task.annotations[0]["id"], result=result)
        else:
            client.annotations.create(id=task.id, result=result)

    return annotate


class TestAnnotationBackends(AnnotationBackendSuite):
    """Every registered annotation backend, against a real destination."""

    @pytest.fixture(params=registered("annotation_backends"))
    def backend(self, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
        settings: dict[str, Any] = {}
        if request.param == "label_studio":
            server = request.getfixturevalue("label_studio")
            monkeypatch.setenv("FORGEML_TEST_LABEL_STUDIO_TOKEN", server.token)
            settings = {"url": server.url, "token": {"env": "FORGEML_TEST_LABEL_STUDIO_TOKEN"}}
        return ProviderOpener(str(tmp_path / "ws"), "annotation_backends", request.param, settings)()

    @pytest.fixture
    def annotate(self, backend: Any) -> Callable[[str, str, str], None]:
        if backend.name == "local":
            return lambda project, key, label: backend.annotate(project, key, label, "ann")
        if backend.name == "label_studio":
            return label_studio_annotate(backend)
        pytest.fail(f"no way to annotate in backend {backend.name!r}: add one to {__file__}")
