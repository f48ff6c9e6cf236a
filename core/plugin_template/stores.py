"""Templates for stores: each starts from forgeml's embedded engine for its layer, with its own settings.

The generated provider subclasses the engine the built-in uses, so it passes the suite as written;
its docstring says what to replace to put the layer on another database or service, and the test
keeps telling the author whether the replacement still holds every rule.
"""

from __future__ import annotations

_PLACE = '''

def _place(path: str, workspace: Any) -> str:
    """A path relative to the workspace root (or as given: absolute, or a URL with a scheme)."""
    if "://" in path or Path(path).is_absolute() or workspace is None:
        return path
    return str(Path(workspace.root) / path)
'''


def _store(kind: str, hook: str, suite: str, engine: str, module: str, setting_line: str, init: str,
           description: str, selection: str, test: str, extra: str = "") -> dict[str, str]:
    errors = "from forgeml.errors import ValidationError\n" if "ValidationError" in extra else ""
    return {
        "suite": suite,
        "description": description,
        "selection": selection,
        "imports": "from pathlib import Path",
        "plugin": f'''{errors}from {module} import {engine}


@dataclass
class Settings:
    """Settings of the {{name}} {kind}."""

{setting_line}
{_PLACE}

class {{cls}}({engine}):
    """{description}

    Start here: it runs on forgeml's embedded engine ({engine}). To put the layer on another
    system, override the contract's methods with calls to it; ``pytest`` runs forgeml.testing.{suite}
    and says which rule a change breaks.
    """

    def __init__(self, settings: Settings | None = None, workspace: Any = None):
        self.settings = settings or Settings()
{init}
{extra}

@hookimpl
def {hook}(register):
    """Offer the {{name}} {kind}."""
    register("{{name}}", {{cls}}, settings=Settings, description="{description.rstrip('.').lower()}")
''',
        "test": test,
    }


STORES: dict[str, dict[str, str]] = {
    "artifact_store": _store(
        "artifact store", "forgeml_register_artifact_stores", "ArtifactStoreSuite", "FsspecArtifactStore",
        "forgeml.storage.artifacts",
        '    root: str = setting("artifacts-{name}", "Object root: a folder relative to the workspace, or an fsspec URL.")\n'
        '    max_object_mb: int = setting(4096, "Largest object accepted, in MiB.")',
        "        super().__init__(_place(self.settings.root, workspace))",
        "Content-addressed artifacts under a root of their own, with a size limit per object.",
        '    [storage.artifacts]\n    plugin = "{name}"\n    root = "artifacts-{name}"',
        '''import functools

import pytest

from forgeml.testing import ArtifactStoreSuite
from {package}.plugin import {cls}, Settings


class Test{cls}(ArtifactStoreSuite):
    @pytest.fixture
    def open_store(self, tmp_path):
        return functools.partial({cls}, Settings(root=str(tmp_path / "objects")))

    @pytest.fixture
    def store(self, open_store):
        return open_store()


def test_an_object_over_the_limit_is_refused(tmp_path):
    from forgeml.errors import ValidationError

    store = {cls}(Settings(root=str(tmp_path / "objects"), max_object_mb=1))
    with pytest.raises(ValidationError, match="larger than"):
        store.put_bytes(b"x" * (2 << 20))
''',
        extra='''
    def _check_size(self, size: int) -> None:
        if size > self.settings.max_object_mb << 20:
            raise ValidationError(f"{name} artifact store: an object of {{size}} bytes is larger than "
                                  f"max_object_mb = {{self.settings.max_object_mb}}")

    def put_bytes(self, data: bytes) -> str:
        """Store bytes within the size limit and return their sha256 hex digest."""
        self._check_size(len(data))
        return super().put_bytes(data)

    def put_file(self, path: Any) -> str:
        """Store a file within the size limit and return its sha256 hex digest."""
        if Path(path).is_file():
            self._check_size(Path(path).stat().st_size)
        return super().put_file(path)
'''),
    "online_store": _store(
        "online store", "forgeml_register_online_stores", "OnlineStoreSuite", "SQLiteOnlineStore",
        "forgeml.storage.online",
        '    path: str = setting("online-{name}.db", "Database file, relative to the workspace root.")',
        "        super().__init__(_place(self.settings.path, workspace))",
        "Latest feature values per entity, for serving.",
        '    [storage.online]\n    plugin = "{name}"\n    path = "online-{name}.db"',
        '''import functools

import pytest

from forgeml.testing import OnlineStoreSuite
from {package}.plugin import {cls}, Settings


class Test{cls}(OnlineStoreSuite):
    @pytest.fixture
    def open_store(self, tmp_path):
        return functools.partial({cls}, Settings(path=str(tmp_path / "online.db")))
'''),
    "offline_store": _store(
        "offline store", "forgeml_register_offline_stores", "OfflineStoreSuite", "DuckDBOfflineStore",
        "forgeml.storage.offline",
        '    root: str = setting("offline-{name}", "Where tables live: a folder relative to the workspace, or a URL.")',
        "        super().__init__(_place(self.settings.root, workspace))",
        "Feature history for training sets and point-in-time joins.",
        '    [storage.offline]\n    plugin = "{name}"\n    root = "offline-{name}"',
        '''import functools

import pytest

from forgeml.testing import OfflineStoreSuite
from {package}.plugin import {cls}, Settings


class Test{cls}(OfflineStoreSuite):
    @pytest.fixture
    def open_store(self, tmp_path):
        return functools.partial({cls}, Settings(root=str(tmp_path / "offline")))
'''),
    "vector_store": _store(
        "vector store", "forgeml_register_vector_stores", "VectorStoreSuite", "LanceDBVectorStore",
        "forgeml.storage.vectors",
        '    uri: str = setting("vectors-{name}", "Database folder relative to the workspace, or a URI.")',
        "        super().__init__(_place(self.settings.uri, workspace))",
        "Embedding features and nearest-neighbour search.",
        '    [storage.vector]\n    plugin = "{name}"\n    uri = "vectors-{name}"',
        '''import functools

import pytest

from forgeml.testing import VectorStoreSuite
from {package}.plugin import {cls}, Settings


class Test{cls}(VectorStoreSuite):
    @pytest.fixture
    def open_store(self, tmp_path):
        return functools.partial({cls}, Settings(uri=str(tmp_path / "vectors")))
'''),
    "metadata_store": _store(
        "metadata store", "forgeml_register_metadata_stores", "MetadataStoreSuite", "SQLiteMetadataStore",
        "forgeml.storage.sqlite",
        '    path: str = setting("metadata-{name}.db", "Database file, relative to the workspace root.")',
        "        super().__init__(_place(self.settings.path, workspace))",
        "Runs, jobs, models and every other layer's tables, through SQLAlchemy.",
        '    [storage.metadata]\n    plugin = "{name}"\n    path = "metadata-{name}.db"',
        '''import functools

import pytest

from forgeml.testing import MetadataStoreSuite
from {package}.plugin import {cls}, Settings


class Test{cls}(MetadataStoreSuite):
    @pytest.fixture
    def reopen(self, tmp_path):
        return functools.partial({cls}, Settings(path=str(tmp_path / "metadata.db")))

    @pytest.fixture
    def store(self, reopen):
        store = reopen()
        yield store
        store.close()
'''),
}
