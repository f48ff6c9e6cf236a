"""The artifact store with encryption at rest: objects AES-GCM encrypted on disk, plaintext to readers.

Objects stay addressed by the sha256 of their plaintext, so encrypting changes no digest a run or a
model version recorded; a reader decrypts, then verifies the digest as before. Objects written before
encryption was turned on stay readable, and ``reencrypt`` rewrites them (and objects under an older
key) with the current key.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from forgeml.errors import NotFoundError
from forgeml.pii.encryption import (
    CHUNK as SEAL_CHUNK,
)
from forgeml.pii.encryption import (
    HEADER,
    DecryptingReader,
    Keyring,
    encrypt_chunks,
    file_chunks,
    is_sealed,
    key_id_of,
)

from .artifacts import CHUNK, FsspecArtifactStore, VerifyingReader


class EncryptedArtifactStore(FsspecArtifactStore):
    """A content-addressed store whose objects are encrypted with the keyring's current key."""

    def __init__(self, root: str, keyring: Keyring, fs: Any = None, atomic_put: bool = False):
        super().__init__(root, fs=fs, atomic_put=atomic_put)
        self.keyring = keyring

    def _write(self, chunks: Iterator[bytes], digest: str, what: str) -> None:
        """Write an object's bytes encrypted (under a temporary name, then moved into place)."""
        super()._write(encrypt_chunks(_rechunk(chunks), self.keyring), digest, what)

    def _write_file(self, path: Path, digest: str) -> None:
        """Encrypt a local file in as an object."""
        with open(path, "rb") as src:
            self._write(file_chunks(src), digest, repr(str(path)))

    def _raw(self, digest: str) -> BinaryIO:
        path = self._path(digest)
        try:
            return open(path, "rb") if self._local else self.fs.open(path, "rb")
        except FileNotFoundError as e:
            raise NotFoundError(f"artifact {digest} is not in {self.root}") from e

    def open(self, digest: str) -> BinaryIO:
        """Open an object's plaintext (decrypted as read); reading to the end verifies its digest."""
        raw = self._raw(digest)
        head = raw.read(HEADER)
        raw.seek(0)
        source: Any = DecryptingReader(raw, self.keyring, f"artifact {digest}") if is_sealed(head) else raw
        return io.BufferedReader(VerifyingReader(source, digest, f"artifact {digest}"), CHUNK)  # type: ignore[return-value]

    def reencrypt(self) -> dict[str, int]:
        """Rewrite every object not under the current key (plain or an older key); return counts."""
        counts = {"objects": 0, "rewritten": 0}
        for info in self.list():
            counts["objects"] += 1
            with self._raw(info.digest) as raw:
                head = raw.read(HEADER)
            if is_sealed(head) and key_id_of(head) == self.keyring.current:
                continue
            with tempfile.TemporaryDirectory() as folder:
                plain = self.get_file(info.digest, Path(folder) / "plain")  # verified: damage is not re-sealed
                with open(plain, "rb") as src:
                    self._write(file_chunks(src), info.digest, f"artifact {info.digest}")
            counts["rewritten"] += 1
        return counts


def _rechunk(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Yield the bytes of chunks in pieces of at most the cipher's chunk size."""
    for chunk in chunks:
        if len(chunk) <= SEAL_CHUNK:
            yield chunk
            continue
        view = memoryview(chunk)
        for start in range(0, len(view), SEAL_CHUNK):
            yield view[start:start + SEAL_CHUNK]
