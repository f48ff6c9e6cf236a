"""The built-in metadata and artifact stores pass the conformance suites plugin authors run."""

from __future__ import annotations

import uuid

import pytest

from forgeml.testing import ArtifactStoreSuite, MetadataStoreSuite


class TestSQLiteMetadataStore(MetadataStoreSuite):
    """The default SQLite store, on a real database file."""

    @pytest.fixture
    def reopen(self, tmp_path):
        from forgeml.storage.sqlite import SQLiteMetadataStore

        return lambda: SQLiteMetadataStore(tmp_path / "metadata.db", busy_timeout_ms=60000)

    @pytest.fixture
    def store(self, reopen):
        store = reopen()
        yield store
        store.close()


class TestPostgresMetadataStore(MetadataStoreSuite):
    """The postgres plugin's store, in a schema of its own on the real server from tests/services/postgres.sh."""

    @pytest.fixture
    def reopen(self, postgres_url):
        from forgeml.plugins.postgres.store import open_store

        schema = f"conformance_{uuid.uuid4().hex[:12]}"
        yield lambda: open_store(postgres_url, schema)
        open_store(postgres_url, schema, migrate_core=False).execute(f'DROP SCHEMA "{schema}" CASCADE')

    @pytest.fixture
    def store(self, reopen):
        store = reopen()
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

    def test_another_process_sees_the_objects(self) -> None:
        """Skipped: fsspec's memory filesystem lives inside one process by design."""
        pytest.skip("fsspec's memory filesystem lives inside one process")


class TestWorkspaceStores(MetadataStoreSuite):
    """The store a workspace opens through plugins.toml is the same contract."""

    @pytest.fixture
    def store(self, workspace):
        return workspace.metadata

    @pytest.fixture
    def reopen(self, workspace):
        from forgeml.workspace import Workspace

        return lambda: Workspace(workspace.root).metadata
