"""Every registered store provider runs its layer's conformance suite, opened as a workspace opens it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from forgeml.testing import ArtifactStoreSuite, OfflineStoreSuite, OnlineStoreSuite, VectorStoreSuite
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


def _s3(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A fresh prefix in a bucket of the S3 stand-in (moto server mode: an in-memory mock, no real S3 here)."""
    endpoint = request.getfixturevalue("s3_endpoint")
    return {"endpoint_url": endpoint.endpoint_url, "root": f"s3://{_bucket(endpoint)}/{uuid.uuid4().hex[:8]}"}


_buckets: dict[str, str] = {}


def _bucket(endpoint: Any) -> str:
    """One bucket per endpoint for the whole run; tests keep apart by prefix."""
    if endpoint.endpoint_url not in _buckets:
        _buckets[endpoint.endpoint_url] = endpoint.new_bucket()
    return _buckets[endpoint.endpoint_url]


def _spark(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The Spark offline store on a real standalone cluster (master + worker JVMs) on loopback."""
    from engine_services import spark_settings

    return spark_settings(request.getfixturevalue("spark_master"))


class TestOfflineStores(OfflineStoreSuite):
    """Every offline store (duckdb over Parquet on disk; s3: the same over Parquet in an S3 bucket; spark: Parquet
    on disk, queried on a Spark standalone cluster)."""

    open_store = each_provider("offline_stores", {"s3": _s3, "spark": _spark})


class TestArtifactStores(ArtifactStoreSuite):
    """Every artifact store (fsspec on disk; s3: an S3 bucket on moto's server mode, a mock of S3)."""

    open_store = each_provider("artifact_stores", {"s3": _s3})

    @pytest.fixture
    def store(self, open_store: Any) -> Any:
        """A fresh store opened as a workspace opens it."""
        return open_store()


class TestVectorStores(VectorStoreSuite):
    """Every vector store (lancedb)."""

    open_store = each_provider("vector_stores")
