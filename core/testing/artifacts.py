"""Conformance suite for artifact stores (contract: :class:`forgeml.contracts.ArtifactStore`).

Subclass :class:`ArtifactStoreSuite` as ``Test...`` and give it a ``store`` fixture. Rules it enforces:

- objects are addressed by the sha256 hex digest of their bytes; empty and multi-megabyte objects
  round-trip through bytes, files and streams;
- identical bytes are stored once; ``exists`` and ``list`` (with sizes) reflect exactly what was stored;
- a digest never stored raises NotFoundError from every reader; a string that is not a digest is a
  ForgeError, never a path lookup;
- bytes changed or truncated behind the store's back raise CorruptObjectError on read;
- a new instance over the same root sees every object (persistence across a reopen), and an object
  stored by another process is read here, and the other way round.

Reopening and the other process use the ``open_store`` fixture: a picklable zero-argument callable
opening the store over the same data. Its default, :class:`ReopenAtRoot`, calls the store's class
with its ``root``; override it when your store needs more to open.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from forgeml.contracts import ArtifactStore
from forgeml.errors import CorruptObjectError, ForgeError, NotFoundError
from forgeml.testing.process import call_opened, close, run_elsewhere

Overwrite = Callable[[str, bytes], None]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ReopenAtRoot:
    """Opens a new instance of an artifact store class over the same root: ``ReopenAtRoot(cls, root)()``."""

    cls: type
    root: str

    def __call__(self) -> ArtifactStore:
        """Return ``cls(root)``."""
        return self.cls(self.root)


def _put_elsewhere(open_store: Callable[[], Any], data: bytes) -> str:
    return call_opened(open_store, "put_bytes", data)


def _get_elsewhere(open_store: Callable[[], Any], digest: str) -> bytes:
    return call_opened(open_store, "get_bytes", digest)


class ArtifactStoreSuite:
    """Tests every artifact store must pass; subclass it and define a ``store`` fixture.

    To test that damaged objects are detected, the suite replaces a stored object's bytes
    behind the store's back through the ``overwrite_object`` fixture. Its default handles stores
    built on fsspec like the built-in one (``store.fs`` plus ``store.object_path(digest)`` or the
    built-in layout); override it for other storage, or those tests are skipped.
    """

    @pytest.fixture
    def store(self) -> ArtifactStore:
        """The store under test: override in the subclass."""
        pytest.fail("define a `store` fixture returning a fresh, empty artifact store", pytrace=False)

    @pytest.fixture
    def open_store(self, store: Any) -> Callable[[], ArtifactStore]:
        """A picklable callable opening another instance over the store's data (default: its class at its root)."""
        return ReopenAtRoot(type(store), store.root)

    @pytest.fixture
    def overwrite_object(self, store: Any) -> Overwrite:
        """Replace the stored bytes of an object without going through the store."""
        fs = getattr(store, "fs", None)
        locate = getattr(store, "object_path", None) or getattr(store, "_path", None)
        if fs is None or locate is None:
            pytest.skip("define an `overwrite_object(digest, data)` fixture to test corruption detection")

        def overwrite(digest: str, data: bytes) -> None:
            with fs.open(locate(digest), "wb") as f:
                f.write(data)

        return overwrite

    # ------------------------------------------------------------ contract shape
    def test_satisfies_the_protocol(self, store: ArtifactStore) -> None:
        """The store has every method of the ArtifactStore contract and a root."""
        assert isinstance(store, ArtifactStore)
        assert isinstance(store.root, str) and store.root

    # ------------------------------------------------------------ put and get
    def test_bytes_round_trip_under_their_sha256(self, store: ArtifactStore) -> None:
        """put_bytes returns the sha256 hex digest and get_bytes returns the same bytes."""
        data = b"forgeml artifact \x00\xff"
        digest = store.put_bytes(data)
        assert digest == _sha(data)
        assert store.get_bytes(digest) == data

    def test_empty_object(self, store: ArtifactStore) -> None:
        """Zero bytes are a valid object."""
        digest = store.put_bytes(b"")
        assert store.exists(digest)
        assert store.get_bytes(digest) == b""

    def test_file_round_trip(self, store: ArtifactStore, tmp_path: Path) -> None:
        """put_file stores a multi-megabyte file; get_file writes an identical copy to dest."""
        src = tmp_path / "model.bin"
        data = bytes(range(256)) * (3 * 4096 + 17)  # a little over 3 MiB, not a chunk multiple
        src.write_bytes(data)
        digest = store.put_file(src)
        assert digest == _sha(data)
        dest = store.get_file(digest, tmp_path / "out" / "copy.bin")
        assert Path(dest).read_bytes() == data

    def test_put_file_of_a_missing_path_is_not_found(self, store: ArtifactStore, tmp_path: Path) -> None:
        """Storing a file that does not exist raises NotFoundError."""
        with pytest.raises(NotFoundError):
            store.put_file(tmp_path / "missing.bin")

    def test_open_streams_in_chunks(self, store: ArtifactStore) -> None:
        """open returns a readable stream whose chunks add up to the object."""
        data = b"0123456789" * 100_000
        digest = store.put_bytes(data)
        with store.open(digest) as f:
            chunks = []
            while chunk := f.read(65536):
                chunks.append(chunk)
        assert b"".join(chunks) == data

    def test_exists(self, store: ArtifactStore) -> None:
        """exists is True only for stored digests."""
        digest = store.put_bytes(b"present")
        assert store.exists(digest)
        assert not store.exists(_sha(b"absent"))

    def test_list_shows_each_object_with_its_size(self, store: ArtifactStore) -> None:
        """list yields every stored digest with its size in bytes."""
        a, b = store.put_bytes(b"a" * 10), store.put_bytes(b"b" * 20)
        assert {(i.digest, i.size) for i in store.list()} == {(a, 10), (b, 20)}

    def test_identical_content_is_stored_once(self, store: ArtifactStore, tmp_path: Path) -> None:
        """The same bytes put twice, once as a file, give one digest and one listed object."""
        data = b"same content"
        first = store.put_bytes(data)
        path = tmp_path / "same.txt"
        path.write_bytes(data)
        assert store.put_file(path) == first
        assert store.put_bytes(data) == first
        assert [i.digest for i in store.list()] == [first]

    # ------------------------------------------------------------ bad input and damage
    def test_unknown_digest_is_not_found(self, store: ArtifactStore, tmp_path: Path) -> None:
        """Reading a digest that was never stored raises NotFoundError from every reader."""
        missing = _sha(b"never stored")
        with pytest.raises(NotFoundError):
            store.get_bytes(missing)
        with pytest.raises(NotFoundError):
            store.open(missing)
        with pytest.raises(NotFoundError):
            store.get_file(missing, tmp_path / "nothing.bin")
        assert not (tmp_path / "nothing.bin").exists()

    def test_malformed_digest_is_a_clear_error(self, store: ArtifactStore) -> None:
        """A string that is not a sha256 digest raises a ForgeError, never a path lookup."""
        for bad in ("", "abc", "../" * 21 + "x", "Z" * 64):
            with pytest.raises(ForgeError):
                store.get_bytes(bad)

    def test_corrupt_object_is_detected(self, store: ArtifactStore, overwrite_object: Overwrite) -> None:
        """Bytes changed after storing (same length) raise CorruptObjectError on read."""
        data = b"precious weights" * 1000
        digest = store.put_bytes(data)
        overwrite_object(digest, b"X" + data[1:])
        with pytest.raises(CorruptObjectError):
            store.get_bytes(digest)
        with pytest.raises(CorruptObjectError):
            with store.open(digest) as f:
                f.read()

    def test_truncated_object_is_detected(
        self, store: ArtifactStore, overwrite_object: Overwrite, tmp_path: Path
    ) -> None:
        """A cut-short object raises CorruptObjectError and get_file leaves no partial file."""
        data = b"checkpoint" * 5000
        digest = store.put_bytes(data)
        overwrite_object(digest, data[: len(data) // 2])
        with pytest.raises(CorruptObjectError):
            store.get_bytes(digest)
        dest = tmp_path / "restore" / "ckpt.bin"
        with pytest.raises(CorruptObjectError):
            store.get_file(digest, dest)
        leftovers = list(dest.parent.iterdir()) if dest.parent.exists() else []
        assert leftovers == []

    # ------------------------------------------------------------ what real use depends on
    def test_objects_survive_a_reopen(self, store: ArtifactStore, open_store: Callable[[], Any],
                                      tmp_path: Path) -> None:
        """A new instance over the same root finds, lists and reads every object the first one stored."""
        data, src = b"kept across a reopen", tmp_path / "weights.bin"
        src.write_bytes(bytes(range(256)) * 4096)
        digests = {store.put_bytes(data): data, store.put_file(src): src.read_bytes()}
        close(store)
        again = open_store()
        try:
            listed = {info.digest: info.size for info in again.list()}
            for digest, expected in digests.items():
                assert again.exists(digest), f"after a reopen expected {digest[:12]} to exist, it does not"
                assert again.get_bytes(digest) == expected, f"after a reopen {digest[:12]} reads back other bytes"
                assert listed.get(digest) == len(expected), \
                    f"after a reopen expected {digest[:12]} listed with {len(expected)} bytes, got {listed.get(digest)}"
        finally:
            close(again)

    def test_another_process_sees_the_objects(self, store: ArtifactStore, open_store: Callable[[], Any]) -> None:
        """An object stored by another process is read here, and one stored here is read there."""
        there = b"stored by another process"
        digest = _put_elsewhere_checked(open_store, there)
        assert store.exists(digest), "expected the other process's object to exist here, it does not"
        assert store.get_bytes(digest) == there
        here = b"stored by this process"
        mine = store.put_bytes(here)
        got = run_elsewhere(_get_elsewhere, open_store, mine)
        assert got == here, f"the other process expected {here!r}, got {got!r}"


def _put_elsewhere_checked(open_store: Callable[[], Any], data: bytes) -> str:
    digest = run_elsewhere(_put_elsewhere, open_store, data)
    assert digest == _sha(data), f"the other process's put_bytes returned {digest!r}, expected the sha256 of the data"
    return digest
