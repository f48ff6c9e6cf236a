"""S3 and S3-compatible object storage (AWS, MinIO, Ceph RGW, ...) for artifacts and offline Parquet tables.

``[storage.artifacts] plugin = "s3"`` keeps sha256-addressed objects under ``s3://BUCKET/PREFIX``;
``[storage.offline] plugin = "s3"`` keeps the DuckDB offline store's date-partitioned Parquet there. Objects
are written through s3fs (``pip install 'forgeml[s3]'``); the offline store reads its tables through pyarrow's
own S3 client as pyarrow datasets handed to DuckDB (several times faster than DuckDB reading through s3fs), and
file sources at other s3:// URLs through s3fs. No DuckDB extension is downloaded at run time, and DuckDB's
version is not pinned by one (benchmarks/s3_offline.py measures the routes against DuckDB's httpfs extension
from PyPI). Credentials come from the usual AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE,
an instance role) unless given here as ``{ env = "VAR" }``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgeml import hookimpl
from forgeml.config import Secret, reveal, setting
from forgeml.errors import ConfigError, StorageError


@dataclass
class S3Connection:
    """Where the bucket lives and how to sign in."""

    endpoint_url: Secret | str = setting("", "Endpoint of an S3-compatible server, e.g. \"http://127.0.0.1:9000\" "
                                             "(empty: AWS itself).")
    region: str = setting("us-east-1", "Region the bucket is in.")
    path_style: bool = setting(True, "Address buckets as ENDPOINT/BUCKET/KEY (most S3-compatible servers need "
                                     "this); false: BUCKET.ENDPOINT/KEY.")
    access_key_id: Secret | None = setting(None, "Access key as { env = \"VAR\" } (unset: the AWS credential chain).")
    secret_access_key: Secret | None = setting(None, "Secret key as { env = \"VAR\" } (unset: the AWS chain).")


@dataclass
class S3ArtifactSettings(S3Connection):
    """Settings of the S3 artifact store."""

    root: str = setting("", "Where objects live: s3://BUCKET/PREFIX (the bucket must exist).")


@dataclass
class S3OfflineSettings(S3Connection):
    """Settings of the DuckDB offline store over Parquet on S3."""

    root: str = setting("", "Where Parquet tables live: s3://BUCKET/PREFIX (the bucket must exist).")
    threads: int = setting(0, "DuckDB worker threads (0: one per CPU core).")
    memory_limit: str = setting("", "DuckDB memory limit such as \"8GB\" (empty: DuckDB's default, 80% of RAM).")


def _endpoint(settings: S3Connection, what: str) -> Any:
    """The endpoint's URL split into its parts, or None for AWS itself."""
    from urllib.parse import urlsplit

    endpoint = reveal(settings.endpoint_url) or None
    if endpoint is None:
        return None
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    if not parts.netloc:
        raise ConfigError(f"{what}: endpoint_url {endpoint!r} has no host; write it as http://HOST:PORT")
    return parts


def filesystem(settings: S3Connection, root: str, what: str) -> Any:
    """Return an s3fs filesystem for the settings, after checking that root's bucket exists."""
    if not root.startswith("s3://") or not root.split("://", 1)[1].strip("/"):
        raise ConfigError(f"{what}: root must be an s3://BUCKET/PREFIX URL, got {root!r}")
    try:
        import s3fs
        from botocore.exceptions import BotoCoreError
    except ImportError as e:
        raise ConfigError(f"{what} needs s3fs: pip install 'forgeml[s3]' ({e})") from e
    parts = _endpoint(settings, what)
    client: dict[str, Any] = {"region_name": settings.region}
    if parts is not None:
        client["endpoint_url"] = parts.geturl()
    # listings are never cached: another process's new objects must show up at the next read
    fs = s3fs.S3FileSystem(key=reveal(settings.access_key_id), secret=reveal(settings.secret_access_key),
                           client_kwargs=client, use_listings_cache=False, skip_instance_cache=True,
                           config_kwargs={"s3": {"addressing_style": "path" if settings.path_style else "virtual"}})
    bucket = root.split("://", 1)[1].split("/", 1)[0]
    where = f"{what}: bucket {bucket!r} at {parts.geturl() if parts else 'AWS'}"
    try:
        fs.ls(bucket, refresh=True)
    except FileNotFoundError as e:
        raise StorageError(f"{where} does not exist; create it first (aws s3 mb s3://{bucket})") from e
    except PermissionError as e:
        raise StorageError(f"{where} refused the credentials: {e}") from e
    except (OSError, BotoCoreError) as e:
        raise StorageError(f"{where} cannot be reached: {e}") from e
    return fs


def arrow_filesystem(settings: S3Connection, what: str) -> Any:
    """Return pyarrow's own S3 client for the settings (the offline store reads Parquet through it)."""
    from pyarrow.fs import S3FileSystem

    parts = _endpoint(settings, what)
    options: dict[str, Any] = {"region": settings.region, "force_virtual_addressing": not settings.path_style}
    if parts is not None:
        options.update(endpoint_override=parts.netloc, scheme=parts.scheme or "https")
    key, secret = reveal(settings.access_key_id), reveal(settings.secret_access_key)
    if key and secret:  # else pyarrow follows the AWS credential chain, as s3fs does
        options.update(access_key=key, secret_key=secret)
    return S3FileSystem(**options)


def _artifacts(settings: S3ArtifactSettings, workspace: Any) -> Any:
    from forgeml.storage.artifacts import FsspecArtifactStore

    fs = filesystem(settings, settings.root, "artifact store 's3'")
    keyring = workspace.encryption_keyring()  # [privacy] encrypt_at_rest
    if keyring is not None:
        from forgeml.storage.sealed_artifacts import EncryptedArtifactStore

        return EncryptedArtifactStore(settings.root, keyring, fs=fs, atomic_put=True)
    return FsspecArtifactStore(settings.root, fs=fs, atomic_put=True)


def _offline(settings: S3OfflineSettings, workspace: Any) -> Any:
    from forgeml.storage.offline import DuckDBOfflineStore

    fs = filesystem(settings, settings.root, "offline store 's3'")
    return DuckDBOfflineStore(settings.root, threads=settings.threads or None,
                              memory_limit=settings.memory_limit or None, search_path=str(workspace.root), fs=fs,
                              arrow_fs=arrow_filesystem(settings, "offline store 's3'"))


@hookimpl
def forgeml_register_artifact_stores(register):
    """Offer the S3 artifact store."""
    register("s3", _artifacts, settings=S3ArtifactSettings,
             description="sha256-addressed objects in an S3 or S3-compatible bucket")


@hookimpl
def forgeml_register_offline_stores(register):
    """Offer the DuckDB offline store over Parquet in an S3 bucket."""
    register("s3", _offline, settings=S3OfflineSettings,
             description="date-partitioned Parquet in an S3 or S3-compatible bucket, queried with DuckDB")
