"""Encryption at rest: artifacts and prediction logs unreadable without the key, identical with it."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

import pytest


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture
def sealed(workspace, monkeypatch):
    """The workspace with encryption at rest turned on under one fresh key."""
    monkeypatch.setenv("FORGEML_ENCRYPTION_KEYS", _key())
    workspace.config.section("privacy").encrypt_at_rest = True
    workspace._close_stores()
    return workspace


def test_artifacts_are_encrypted_on_disk_and_identical_when_read(sealed, tmp_path):
    """Stored objects hold no plaintext; reads give the exact bytes under the plaintext's digest."""
    import hashlib

    from forgeml.storage.artifacts import FsspecArtifactStore

    data = b"secret-payload-" * 100_000 + os.urandom(1000)
    store = sealed.artifacts
    digest = store.put_bytes(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.get_bytes(digest) == data
    source = tmp_path / "big.bin"
    source.write_bytes(data[::-1])
    assert sealed.artifacts.get_bytes(store.put_file(source)) == data[::-1]
    on_disk = [p.read_bytes() for p in (sealed.root / ".forgeml" / "artifacts" / "objects").rglob("*") if p.is_file()]
    assert len(on_disk) == 2 and not any(b"secret-payload" in blob for blob in on_disk)
    from forgeml.errors import ForgeError

    plain = FsspecArtifactStore(str(sealed.root / ".forgeml" / "artifacts"))  # no key
    with pytest.raises(ForgeError):
        plain.get_bytes(digest)


def test_a_wrong_key_or_a_damaged_object_fails_cleanly(sealed, monkeypatch):
    """Another key cannot read an object; one flipped byte fails authentication, never returns bad data."""
    from forgeml.errors import ConfigError, CorruptObjectError
    from forgeml.pii.encryption import Keyring
    from forgeml.storage.sealed_artifacts import EncryptedArtifactStore

    digest = sealed.artifacts.put_bytes(b"abc" * 1000)
    monkeypatch.setenv("OTHER_KEYS", _key())
    stranger = EncryptedArtifactStore(sealed.artifacts.root, Keyring.from_env("OTHER_KEYS"))
    with pytest.raises(ConfigError, match="does not hold"):
        stranger.get_bytes(digest)
    path = next(p for p in (sealed.root / ".forgeml" / "artifacts" / "objects").rglob(digest))
    blob = bytearray(path.read_bytes())
    blob[40] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(CorruptObjectError):
        sealed.artifacts.get_bytes(digest)


def test_key_rotation_reencrypts_every_object(sealed, monkeypatch):
    """With a new key in front, reencrypt rewrites old objects; the old key can then be dropped."""
    from forgeml.pii.encryption import Keyring
    from forgeml.storage.sealed_artifacts import EncryptedArtifactStore

    old = os.environ["FORGEML_ENCRYPTION_KEYS"]
    digest = sealed.artifacts.put_bytes(b"rotate me" * 10)
    new = _key()
    monkeypatch.setenv("FORGEML_ENCRYPTION_KEYS", f"{new},{old}")
    both = EncryptedArtifactStore(sealed.artifacts.root, Keyring.from_env("FORGEML_ENCRYPTION_KEYS"))
    assert both.reencrypt() == {"objects": 1, "rewritten": 1}
    assert both.reencrypt() == {"objects": 1, "rewritten": 0}
    monkeypatch.setenv("FORGEML_ENCRYPTION_KEYS", new)
    only_new = EncryptedArtifactStore(sealed.artifacts.root, Keyring.from_env("FORGEML_ENCRYPTION_KEYS"))
    assert only_new.get_bytes(digest) == b"rotate me" * 10


def test_prediction_logs_are_encrypted_and_read_back(sealed):
    """Log files hold no plaintext value; read_prediction_log returns the logged rows."""
    from forgeml.serving import read_prediction_log
    from forgeml.serving.predlog import PredictionLogger, log_root

    logger = PredictionLogger(log_root(sealed), keyring=sealed.encryption_keyring())
    logger.log("m", 1, "primary", "req-1", datetime(2024, 1, 1, tzinfo=UTC), 1.0, {"city": ["Zurichberg"]}, [0.5], 1)
    logger.flush()
    files = list(log_root(sealed).rglob("*.parquet"))
    assert files and not any(b"Zurichberg" in f.read_bytes() for f in files)
    assert read_prediction_log("m", workspace=sealed).column("city").to_pylist() == ["Zurichberg"]
