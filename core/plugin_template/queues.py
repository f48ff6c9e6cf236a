"""Templates for the queues forgeml reads back from: event streams and annotation backends.

Like the store templates, each subclasses the engine of a built-in (a folder of files, the local
labelling backend) and adds a setting of its own; its docstring tells the author to replace the
contract's methods with calls to their own system and let the suite say which rule breaks.
"""

from __future__ import annotations

QUEUES: dict[str, dict[str, str]] = {
    "stream_source": {
        "suite": "EventStreamSuite",
        "description": "An event stream on a folder of files that never holds more than max_file_rows rows a file.",
        "selection": "    [streams.clicks]\n    plugin = \"{name}\"\n    path = \"data/clicks\"\n    max_file_rows = 10000",
        "imports": "from pathlib import Path",
        "plugin": '''from forgeml.errors import ConfigError
from forgeml.plugins.file_streams import FolderEventStream


@dataclass
class Settings:
    """Settings of the {name} stream."""

    path: str = setting("events", "The folder, relative to the workspace root (created when missing).")
    format: str = setting("parquet", "File format of published files: parquet or csv.")
    max_file_rows: int = setting(10_000, "Most rows one file holds; a bigger publish writes several files.")
    poll_interval_s: float = setting(0.05, "How often an idle consumer looks for new files.")


class {cls}(FolderEventStream):
    """The built-in folder stream, publishing in files of at most ``max_file_rows`` rows.

    To bind another system, replace publish(), consumer() and close() (and the consumer's poll(),
    commit() and committed()) with calls to it; the suite says which rule breaks.
    """

    def __init__(self, settings: Settings, workspace: Any = None):
        if settings.max_file_rows < 1:
            raise ConfigError(f"{name} stream: max_file_rows must be at least 1, got {{settings.max_file_rows}}")
        folder = Path(settings.path)
        root = getattr(workspace, "root", None)
        super().__init__(folder if folder.is_absolute() or root is None else Path(root) / folder, settings.format,
                         settings.poll_interval_s)
        self.settings = settings

    def publish(self, rows: Any) -> int:
        """Append rows in files of at most max_file_rows rows, in order; return how many were appended."""
        step = self.settings.max_file_rows
        return sum(super({cls}, self).publish(rows.slice(start, step)) for start in range(0, rows.num_rows, step))


@hookimpl
def forgeml_register_stream_sources(register):
    """Offer the {name} stream."""
    register("{name}", {cls}, settings=Settings, description="a folder of files of bounded size")
''',
        "test": '''import dataclasses

import pytest

from forgeml.testing import EventStreamSuite
from {package}.plugin import {cls}, Settings


class Test{cls}(EventStreamSuite):
    @pytest.fixture
    def stream(self, tmp_path):
        return {cls}(Settings(path=str(tmp_path / "events"), max_file_rows=2))

    @pytest.fixture
    def reopen(self):
        return lambda s: {cls}(dataclasses.replace(s.settings))


def test_a_publish_is_split_into_files_of_max_file_rows(tmp_path):
    import pyarrow as pa

    stream = {cls}(Settings(path=str(tmp_path / "events"), max_file_rows=2))
    assert stream.publish(pa.table({{"n": list(range(5))}})) == 5
    assert [stream.read(f).num_rows for f in stream.files()] == [2, 2, 1]
''',
    },
    "annotation_backend": {
        "suite": "AnnotationBackendSuite",
        "description": "An annotation backend in the workspace that can hide the model's pre-labels from people.",
        "selection": "    [labeling.backend]\n    plugin = \"{name}\"\n    hide_prelabels = true",
        "imports": "import dataclasses",
        "plugin": '''from forgeml.plugins.labeling.local import LocalBackend, LocalSettings


@dataclass
class Settings(LocalSettings):
    """Settings of the {name} backend."""

    hide_prelabels: bool = setting(True, "Keep the model's pre-label and score from annotators (no anchoring).")


class {cls}(LocalBackend):
    """The built-in local backend, optionally without pre-labels.

    To bind another labelling tool, replace create_project(), send_tasks() and pull() with calls to
    it; the suite says which rule breaks.
    """

    name = "{name}"

    def __init__(self, settings: Settings | None, workspace: Any):
        settings = settings or Settings()
        super().__init__(settings, workspace)
        self.hide_prelabels = settings.hide_prelabels

    def send_tasks(self, project: str, tasks: Any) -> int:
        """Add tasks whose keys the project lacks (without their pre-labels when hidden); return how many."""
        if self.hide_prelabels:
            tasks = [dataclasses.replace(t, prediction=None, score=None) for t in tasks]
        return super().send_tasks(project, tasks)


@hookimpl
def forgeml_register_annotation_backends(register):
    """Offer the {name} backend."""
    register("{name}", {cls}, settings=Settings, description="tasks in the workspace, pre-labels hidden")
''',
        "test": '''import pytest

from forgeml.contracts import AnnotationTask
from forgeml.testing import AnnotationBackendSuite
from forgeml.workspace import Workspace
from {package}.plugin import {cls}, Settings


class Test{cls}(AnnotationBackendSuite):
    @pytest.fixture(params=[True, False], ids=["hidden", "shown"])
    def backend(self, request, tmp_path):
        return {cls}(Settings(hide_prelabels=request.param), Workspace.init(tmp_path / "ws"))

    @pytest.fixture
    def annotate(self, backend):
        return lambda project, key, label: backend.annotate(project, key, label, "ann")


def test_hidden_prelabels_are_not_stored(tmp_path):
    backend = {cls}(Settings(hide_prelabels=True), Workspace.init(tmp_path / "ws"))
    project = backend.create_project("p", ["a", "b"], ["text"])
    backend.send_tasks(project, [AnnotationTask("k1", {{"text": "x"}}, "a", 0.9, "clf@1")])
    assert [(t.key, t.prediction, t.score) for t in backend.pending(project, "ann")] == [("k1", None, None)]
''',
    },
}
