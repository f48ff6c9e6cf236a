"""The built-in metadata and artifact stores pass the conformance suites plugin authors run."""

from __future__ import annotations

import pytest

from forgeml.testing import ArtifactStoreSuite, MetadataStoreSuite


class TestSQLiteMetadataStore(MetadataStoreSuite):
    """The default SQLite store, on a real database file."""

    @pytest.fixture
    def store(self, tmp_path):
        from forgeml.storage.sqlite import SQLiteMetadataStore

        store = SQLiteMetadataStore(tmp_path / "metadata.db", busy_timeout_ms=60000)
        yield store
        store.close()


class TestFsspecArtifactStoreLocal(ArtifactStoreSuite):
    """The default artifact store on a local folder."""

    @pytest.fixture
    def store(self, tmp_path):
        from forgeml.storage.artifacts import FsspecArtifactStore

        return FsspecArtifactStore(str(tmp_path / "artifacts"))


class TestFsspecArtifactStoreMemory(ArtifactStoreSuite):
    """The default artifact store on a non-local fsspec URL (the in-memory filesystem)."""

    @pytest.fixture
    def store(self, tmp_path):
        from forgeml.storage.artifacts import FsspecArtifactStore

        return FsspecArtifactStore(f"memory://forgeml-conformance/{tmp_path.name}")


class TestWorkspaceStores(MetadataStoreSuite):
    """The store a workspace opens through plugins.toml is the same contract."""

    @pytest.fixture
    def store(self, workspace):
        return workspace.metadata
