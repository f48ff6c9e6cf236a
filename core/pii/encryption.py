"""Authenticated encryption at rest: AES-256-GCM over fixed-size chunks, keys from the environment.

Why AES-GCM in chunks rather than Fernet: Fernet (AES-128-CBC + HMAC) encrypts one message held
whole in memory and base64-encodes it (a third larger); artifacts run to gigabytes. GCM is
authenticated, runs at memory speed with AES-NI, and chunking lets a reader stream and verify as it
goes. Each chunk has a fresh random nonce, and its index and an end-of-object flag are bound into the
tag (associated data), so reordered, dropped or truncated chunks fail to decrypt.

Layout: ``MAGIC | key id (8) | chunk size (4, big-endian)`` then per chunk ``nonce (12) | ciphertext | tag (16)``.
The key id (first 8 bytes of the key's sha256) picks the key when several are configured: the first
key of ``FORGEML_ENCRYPTION_KEYS`` (comma-separated, each 32 bytes in URL-safe base64) encrypts, all
decrypt, so rotating is adding a key in front and re-encrypting.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

from forgeml.errors import ConfigError, CorruptObjectError

MAGIC = b"FMLENC1\n"
CHUNK = 4 << 20
NONCE, TAG = 12, 16
HEADER = len(MAGIC) + 8 + 4


class Keyring:
    """The configured keys: the first encrypts, any decrypts an object its id names."""

    def __init__(self, keys: list[bytes], source: str = ""):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if not keys:
            raise ConfigError(f"no encryption key in {source or 'the keyring'}")
        self.source = source
        self.ids = [hashlib.sha256(k).digest()[:8] for k in keys]
        self.ciphers = {kid: AESGCM(k) for kid, k in zip(self.ids, keys)}

    @classmethod
    def from_env(cls, variable: str) -> Keyring:
        """Read comma-separated URL-safe base64 32-byte keys from an environment variable."""
        text = os.environ.get(variable)
        if not text:
            raise ConfigError(f"encryption at rest is on but environment variable {variable} is not set; put a "
                              f"key in it (python -c \"import base64,os; print(base64.urlsafe_b64encode("
                              f"os.urandom(32)).decode())\")")
        keys = []
        for i, part in enumerate(p.strip() for p in text.split(",")):
            try:
                key = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
            except ValueError:
                key = b""
            if len(key) != 32:
                raise ConfigError(f"key {i + 1} in {variable} is not 32 bytes in URL-safe base64")
            keys.append(key)
        return cls(keys, variable)

    @property
    def current(self) -> bytes:
        """The id of the key new objects are encrypted with."""
        return self.ids[0]

    def cipher(self, key_id: bytes, where: str) -> Any:
        """Return the cipher of a key id, or raise naming the object whose key is missing."""
        cipher = self.ciphers.get(key_id)
        if cipher is None:
            raise ConfigError(f"{where} is encrypted with key {key_id.hex()}, which {self.source} does not hold")
        return cipher


def is_sealed(head: bytes) -> bool:
    """Return whether bytes start like an encrypted object."""
    return head[: len(MAGIC)] == MAGIC


def key_id_of(head: bytes) -> bytes:
    """Return the key id in an encrypted object's header."""
    return head[len(MAGIC):len(MAGIC) + 8]


def _aad(index: int, last: bool) -> bytes:
    return struct.pack(">Q?", index, last)


def encrypt_chunks(chunks: Iterator[bytes], keyring: Keyring) -> Iterator[bytes]:
    """Yield the encrypted form of a plaintext given as chunks of at most CHUNK bytes."""
    cipher = keyring.cipher(keyring.current, "new object")
    yield MAGIC + keyring.current + struct.pack(">I", CHUNK)
    index = 0
    pending = next(chunks, b"")
    while True:
        following = next(chunks, None)
        nonce = os.urandom(NONCE)
        yield nonce  # apart from the ciphertext: joining them would copy every chunk once more
        yield cipher.encrypt(nonce, pending, _aad(index, following is None))
        if following is None:
            return
        pending, index = following, index + 1


def file_chunks(f: BinaryIO) -> Iterator[bytes]:
    """Yield a file's bytes in CHUNK-sized pieces."""
    while chunk := f.read(CHUNK):
        yield chunk


def encrypt_bytes(data: bytes, keyring: Keyring) -> bytes:
    """Return data encrypted."""
    view = memoryview(data)
    return b"".join(encrypt_chunks((bytes(view[i:i + CHUNK]) for i in range(0, len(data), CHUNK)), keyring))


def decrypt_bytes(data: bytes, keyring: Keyring, where: str = "object") -> bytes:
    """Return the plaintext of encrypted bytes (plain bytes are returned unchanged)."""
    if not is_sealed(data):
        return data
    with DecryptingReader(io.BytesIO(data), keyring, where) as reader:
        return reader.read()


class DecryptingReader(io.RawIOBase):
    """Streams an encrypted object's plaintext, verifying each chunk's tag as it goes.

    Ciphertext is read into two reused buffers (the one ahead tells whether a chunk is the last) and
    decrypted into a third, so a large object costs no allocation per chunk.
    """

    def __init__(self, raw: BinaryIO, keyring: Keyring, where: str):
        self._raw = raw
        self._where = where
        header = raw.read(HEADER)
        if not is_sealed(header) or len(header) < HEADER:
            raise CorruptObjectError(f"{where}: not an encrypted object (or its header is damaged)")
        self._cipher = keyring.cipher(key_id_of(header), where)
        size = struct.unpack(">I", header[-4:])[0] + NONCE + TAG
        self._records = (bytearray(size), bytearray(size))
        self._plain = bytearray(size - NONCE - TAG)
        self._current = 0
        self._have = self._fill(0)
        self._index = 0
        self._buffer = memoryview(b"")
        self._done = False

    def readable(self) -> bool:
        """Return True: this stream reads."""
        return True

    def _fill(self, slot: int) -> int:
        """Read the next chunk record into a buffer; return its length (0 at the end)."""
        view = memoryview(self._records[slot])
        got = 0
        while got < len(view):
            n = self._raw.readinto(view[got:])  # type: ignore[attr-defined]
            if not n:
                break
            got += n
        return got

    def _decrypt_next(self) -> None:
        from cryptography.exceptions import InvalidTag

        current, length = self._current, self._have
        self._current = 1 - current
        self._have = self._fill(self._current)
        last = self._have == 0
        record = memoryview(self._records[current])[:length]
        out = memoryview(self._plain)[:max(0, length - NONCE - TAG)]
        try:
            if length < NONCE + TAG:
                raise ValueError("short chunk")
            self._cipher.decrypt_into(record[:NONCE], record[NONCE:], _aad(self._index, last), out)
        except (InvalidTag, ValueError) as e:
            raise CorruptObjectError(f"{self._where}: chunk {self._index} fails authentication (damaged, "
                                     f"truncated or reordered)") from e
        self._buffer = out
        self._index += 1
        self._done = last

    def readinto(self, buffer: Any) -> int:
        """Fill buffer with plaintext."""
        while not self._buffer:
            if self._done:
                return 0
            self._decrypt_next()
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def close(self) -> None:
        """Close the underlying file."""
        self._raw.close()
        super().close()
