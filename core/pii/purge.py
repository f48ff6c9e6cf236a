"""Removing artifact objects whose content must not outlive an erasure or a retention limit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from forgeml.errors import StorageError


def purge_objects(workspace: Any, digests: Iterable[str]) -> int:
    """Delete objects from the artifact store; return how many were removed.

    Deleting is optional in the artifact-store contract: a store without ``delete`` cannot purge, and
    that is an error here, since keeping the bytes would break the erasure's promise.
    """
    artifacts = workspace.artifacts
    delete = getattr(artifacts, "delete", None)
    wanted = sorted(set(digests))
    if wanted and delete is None:
        raise StorageError(f"the artifact store {type(artifacts).__name__} cannot delete objects, so "
                           f"{len(wanted)} object(s) holding erased data stay; use a store with delete()")
    return sum(1 for digest in wanted if delete(digest))  # type: ignore[misc]
