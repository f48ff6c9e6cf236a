"""The embedded defaults: SQLite metadata store and a content-addressed artifact store on fsspec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgeml import hookimpl
from forgeml.config import setting


@dataclass
class SQLiteSettings:
    """Settings of the SQLite metadata store."""

    path: str = setting(".forgeml/metadata.db", "Database file, relative to the workspace root.")
    busy_timeout_ms: int = setting(30000, "How long a writer waits for another process's lock before failing.")


@dataclass
class FsspecSettings:
    """Settings of the fsspec artifact store."""

    root: str = setting(".forgeml/artifacts", "Artifact root: a folder relative to the workspace, or any fsspec URL.")


def _sqlite(settings: SQLiteSettings, workspace: Any) -> Any:
    from forgeml.storage.sqlite import SQLiteMetadataStore

    return SQLiteMetadataStore(workspace.resolve(settings.path), busy_timeout_ms=settings.busy_timeout_ms)


def _fsspec(settings: FsspecSettings, workspace: Any) -> Any:
    from forgeml.storage.artifacts import FsspecArtifactStore

    root = settings.root if "://" in settings.root else str(workspace.resolve(settings.root))
    keyring = workspace.encryption_keyring()  # [privacy] encrypt_at_rest
    if keyring is not None:
        from forgeml.storage.sealed_artifacts import EncryptedArtifactStore

        return EncryptedArtifactStore(root, keyring)
    return FsspecArtifactStore(root)


@hookimpl
def forgeml_register_metadata_stores(register):
    """Offer the SQLite metadata store."""
    register("sqlite", _sqlite, settings=SQLiteSettings, description="SQLite file in WAL mode")


@hookimpl
def forgeml_register_artifact_stores(register):
    """Offer the fsspec artifact store."""
    register("fsspec", _fsspec, settings=FsspecSettings, description="sha256-addressed objects on any fsspec URL")
