"""Conformance suite for annotation backends (contract: :class:`forgeml.contracts.AnnotationBackend`).

Subclass :class:`AnnotationBackendSuite` as ``Test...`` and give it two fixtures: ``backend`` (the
backend under test) and ``annotate`` (a callable ``annotate(project, key, label)`` that makes a person's
annotation of a task in that backend, or changes it when one exists, the way its users would). Rules:

- ``create_project`` returns a non-empty text id; projects do not share tasks;
- ``send_tasks`` returns how many tasks it added, and sending keys already there adds nothing;
- ``pull(project, None)`` returns every annotation with the key it was sent with and a label exactly as
  one of the classes (quotes and non-ASCII included), an annotator and a time near now;
- ``pull`` with the cursor it returned brings only annotations made or changed since, each once;
- an unknown project raises ForgeError, never another exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from forgeml.contracts import Annotation, AnnotationBackend, AnnotationTask
from forgeml.errors import ForgeError

CLASSES = ["spam ✓", 'say "no"', "ham"]


def tasks(*keys: str) -> list[AnnotationTask]:
    """Tasks with awkward keys and data, each with a pre-label."""
    return [AnnotationTask(k, {"text": f"Grüße, \"{k}\"\nline two", "amount": 12.5, "n": 3}, CLASSES[0], 0.61,
                           "clf@3") for k in keys]


class AnnotationBackendSuite:
    """Tests every annotation backend must pass; subclass it and define ``backend`` and ``annotate``."""

    @pytest.fixture
    def backend(self) -> Any:
        """The backend under test: override it."""
        pytest.fail("define a `backend` fixture returning your annotation backend", pytrace=False)

    @pytest.fixture
    def annotate(self) -> Callable[[str, str, str], None]:
        """A callable (project, key, label) annotating a task as a person would: override it."""
        pytest.fail("define an `annotate` fixture: a callable (project, key, label) that annotates a task",
                    pytrace=False)

    @pytest.fixture
    def project(self, backend: Any) -> str:
        """A fresh project with the suite's classes."""
        made = backend.create_project(f"suite {time.time_ns()}", CLASSES, ["text", "amount", "n"], "pick one")
        assert isinstance(made, str) and made, f"create_project must return a non-empty text id, got {made!r}"
        return made

    def test_implements_the_contract(self, backend: Any) -> None:
        """The backend has a name and the three methods."""
        assert isinstance(backend, AnnotationBackend)
        assert isinstance(backend.name, str) and backend.name

    def test_sending_a_key_twice_adds_it_once(self, backend: Any, project: str) -> None:
        """send_tasks counts what it added; a retried send adds nothing."""
        assert backend.send_tasks(project, tasks("a", "b")) == 2
        assert backend.send_tasks(project, tasks("a", "b", "c")) == 1
        assert backend.send_tasks(project, tasks("c")) == 0

    def test_annotations_come_back_with_keys_and_labels_unchanged(self, backend: Any, project: str,
                                                                  annotate: Callable[[str, str, str], None]) -> None:
        """Every annotation returns with its task's key, its class exactly, an annotator and a recent time."""
        keys = ["k-1", "ключ 2", "it's \"3\""]
        backend.send_tasks(project, tasks(*keys))
        for key, label in zip(keys, CLASSES):
            annotate(project, key, label)
        got, cursor = backend.pull(project, None)
        assert all(isinstance(a, Annotation) for a in got)
        assert sorted((a.key, a.label) for a in got) == sorted(zip(keys, CLASSES)), got
        assert all(isinstance(a.annotator, str) and a.annotator for a in got)
        assert all(abs(a.at - time.time()) < 600 for a in got), [a.at for a in got]
        assert cursor is None or isinstance(cursor, str)

    def test_pull_after_the_cursor_brings_each_change_once(self, backend: Any, project: str,
                                                           annotate: Callable[[str, str, str], None]) -> None:
        """A pull from the returned cursor brings only new or changed annotations, each once."""
        backend.send_tasks(project, tasks("x", "y"))
        annotate(project, "x", CLASSES[0])
        first, cursor = backend.pull(project, None)
        assert [(a.key, a.label) for a in first] == [("x", CLASSES[0])]
        again, cursor = backend.pull(project, cursor)
        assert again == [], f"nothing changed, yet the pull returned {again}"
        time.sleep(0.05)
        annotate(project, "y", CLASSES[2])
        annotate(project, "x", CLASSES[1])
        changed, cursor = backend.pull(project, cursor)
        assert sorted((a.key, a.label) for a in changed) == [("x", CLASSES[1]), ("y", CLASSES[2])], changed
        last, _ = backend.pull(project, cursor)
        assert last == []

    def test_projects_keep_their_own_tasks(self, backend: Any, project: str,
                                           annotate: Callable[[str, str, str], None]) -> None:
        """An annotation in one project is not pulled from another."""
        other = backend.create_project(f"suite other {time.time_ns()}", CLASSES, ["text"], "")
        assert other != project
        backend.send_tasks(project, tasks("p"))
        backend.send_tasks(other, tasks("p"))
        annotate(project, "p", CLASSES[2])
        assert backend.pull(other, None)[0] == []

    def test_an_unknown_project_is_a_forge_error(self, backend: Any) -> None:
        """Sending to or pulling from a project that does not exist raises ForgeError."""
        with pytest.raises(ForgeError):
            backend.send_tasks("987654321", tasks("a"))
        with pytest.raises(ForgeError):
            backend.pull("987654321", None)
