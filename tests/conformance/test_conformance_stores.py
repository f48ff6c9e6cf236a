"""Every registered store provider runs its layer's conformance suite, opened as a workspace opens it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from forgeml.testing import OfflineStoreSuite, OnlineStoreSuite, VectorStoreSuite
from forgeml.testing.base import each_provider


def _redis(request: pytest.FixtureRequest) -> dict[str, Any]:
    url = request.getfixturevalue("redis_url")
    prefix = f"forgeml-test-{uuid.uuid4().hex[:8]}:"

    def clean() -> None:
        import redis

        client = redis.Redis.from_url(url)
        for key in client.scan_iter(match=f"{prefix}*"):
            client.unlink(key)
        client.close()

    request.addfinalizer(clean)
    return {"url": url, "key_prefix": prefix, "batch": 400}


class TestOnlineStores(OnlineStoreSuite):
    """Every online store (sqlite; redis against a real redis-server on loopback)."""

    open_store = each_provider("online_stores", {"redis": _redis})


class TestOfflineStores(OfflineStoreSuite):
    """Every offline store (duckdb over Parquet)."""

    open_store = each_provider("offline_stores")


class TestVectorStores(VectorStoreSuite):
    """Every vector store (lancedb)."""

    open_store = each_provider("vector_stores")
