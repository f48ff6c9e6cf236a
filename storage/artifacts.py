"""The default artifact store: content-addressed (sha256) objects under any fsspec URL."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from forgeml.contracts import ArtifactInfo
from forgeml.errors import CorruptObjectError, NotFoundError, StorageError
from forgeml.paths import safe_digest

CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Return the sha256 hex digest of a local file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _check_digest(digest: str) -> str:
    return safe_digest(digest, "artifact digest")


class VerifyingReader(io.RawIOBase):
    """A read-only stream that raises CorruptObjectError at EOF when the bytes do not match."""

    def __init__(self, raw: BinaryIO, digest: str, where: str):
        self._raw = raw
        self._digest = digest
        self._hash = hashlib.sha256()
        self._where = where
        self._checked = False

    def readable(self) -> bool:
        """Return True: this stream reads."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Read into buffer, verifying the digest when the end is reached."""
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:  # straight into the caller's buffer: no intermediate copy
            n = readinto(buffer) or 0
            data = memoryview(buffer)[:n]
        else:
            data = self._raw.read(len(buffer))
        if not data:
            if not self._checked:
                self._checked = True
                if self._hash.hexdigest() != self._digest:
                    raise CorruptObjectError(f"{self._where}: content does not match its sha256 (corrupt or truncated)")
            return 0
        self._hash.update(data)
        if readinto is None:
            buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Close the underlying file."""
        self._raw.close()
        super().close()


class FsspecArtifactStore:
    """Objects stored as ROOT/objects/ab/<sha256>, written atomically, verified on read."""

    def __init__(self, root: str, fs: Any = None, atomic_put: bool = False):
        self.root = root.rstrip("/")
        # an object store's PUT makes an object visible only once complete: no temporary copy needed
        self._atomic_put = atomic_put
        self._fs: Any = fs
        if fs is not None:  # a filesystem built by a plugin (endpoint, credentials) for this root
            self._base = fs._strip_protocol(self.root).rstrip("/")
            self._local = False
        elif "://" in self.root or "::" in self.root:
            import fsspec

            try:
                self._fs, self._base = fsspec.core.url_to_fs(self.root)
            except (ImportError, ValueError) as e:
                raise StorageError(f"artifact root {root!r}: {e}") from e
            self._local = type(self._fs).__name__ == "LocalFileSystem"
        else:
            # a plain folder: put and exists go through os, and fsspec (slow to import) loads only
            # when a call needs it, so a job that stores its git diff at start does not pay for it
            self._base = Path(os.path.abspath(os.path.expanduser(self.root))).as_posix()
            self._local = True
        self._makedirs(f"{self._base}/objects")
        self._makedirs(f"{self._base}/tmp")

    @property
    def fs(self) -> Any:
        """The fsspec filesystem holding the objects."""
        if self._fs is None:
            from fsspec.implementations.local import LocalFileSystem

            self._fs = LocalFileSystem()
        return self._fs

    def _makedirs(self, path: str) -> None:
        if self._local:
            os.makedirs(path, exist_ok=True)
        else:
            self.fs.makedirs(path, exist_ok=True)

    def _path(self, digest: str) -> str:
        _check_digest(digest)
        return f"{self._base}/objects/{digest[:2]}/{digest}"

    def exists(self, digest: str) -> bool:
        """Return whether an object with this digest is stored."""
        path = self._path(digest)
        return os.path.exists(path) if self._local else bool(self.fs.exists(path))

    def put_bytes(self, data: bytes) -> str:
        """Store bytes once; return their digest."""
        digest = hashlib.sha256(data).hexdigest()
        if not self.exists(digest):
            self._write(iter((data,)), digest, f"{len(data)} bytes")
        return digest

    def _write(self, chunks: Iterator[bytes], digest: str, what: str) -> None:
        """Write an object's bytes under a temporary name, then move it into place (or put it whole)."""
        if self._atomic_put:
            with self._cleaning(None, what):
                self.fs.pipe_file(self._path(digest), b"".join(chunks))
            return
        tmp = f"{self._base}/tmp/{uuid.uuid4().hex}"
        with self._cleaning(tmp, what):
            with (open(tmp, "wb") if self._local else self.fs.open(tmp, "wb")) as f:
                for chunk in chunks:
                    f.write(chunk)
            self._commit(tmp, digest)

    @contextlib.contextmanager
    def _cleaning(self, tmp: str | None, what: str) -> Iterator[None]:
        """Remove a half-written temporary object on any failure; a full or read-only disk is a StorageError."""
        try:
            yield
        except BaseException as e:
            try:
                if tmp is not None and self._local:
                    os.unlink(tmp)
                elif tmp is not None and self.fs.exists(tmp):
                    self.fs.rm(tmp)
            except OSError:
                pass
            if isinstance(e, OSError):
                raise StorageError(f"cannot store {what} in the artifact store at {self.root}: "
                                   f"{e.strerror or e} ({tmp})") from e
            raise

    def put_file(self, path: str | Path) -> str:
        """Store a local file's contents once; return their digest."""
        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"cannot store {str(path)!r}: no such file")
        digest = sha256_file(path)
        if not self.exists(digest):
            self._write_file(path, digest)
        return digest

    def _write_file(self, path: Path, digest: str) -> None:
        """Copy a local file in as an object (under a temporary name, then moved into place, or put whole)."""
        if self._atomic_put:
            with self._cleaning(None, repr(str(path))):
                self.fs.put_file(str(path), self._path(digest))
            return
        tmp = f"{self._base}/tmp/{uuid.uuid4().hex}"
        with self._cleaning(tmp, repr(str(path))):
            self.fs.put_file(str(path), tmp)
            self._commit(tmp, digest)

    def _commit(self, tmp: str, digest: str) -> None:
        final = self._path(digest)
        self._makedirs(final.rsplit("/", 1)[0])
        if self._local:
            os.replace(tmp, final)  # atomic: readers never see a half-written object
        else:
            self.fs.mv(tmp, final)

    def open(self, digest: str) -> BinaryIO:
        """Open an object; reading it to the end verifies its digest."""
        path = self._path(digest)
        try:
            raw = self.fs.open(path, "rb")
        except FileNotFoundError as e:
            raise NotFoundError(f"artifact {digest} is not in {self.root}") from e
        return io.BufferedReader(VerifyingReader(raw, digest, f"artifact {digest}"), CHUNK)  # type: ignore[return-value]

    def get_bytes(self, digest: str) -> bytes:
        """Return an object's verified bytes."""
        with self.open(digest) as f:
            return f.read()

    def get_file(self, digest: str, dest: str | Path) -> Path:
        """Copy an object to dest, verified; a corrupt object leaves no file behind."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            with self.open(digest) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def delete(self, digest: str) -> bool:
        """Remove an object; return whether it was stored."""
        path = self._path(digest)
        try:
            if self._local:
                os.unlink(path)
            else:
                self.fs.rm(path)
        except FileNotFoundError:
            return False
        except OSError as e:
            raise StorageError(f"cannot delete artifact {digest} from {self.root}: {e}") from e
        return True

    def list(self) -> Iterator[ArtifactInfo]:
        """Yield every stored object with its size."""
        base = f"{self._base}/objects"
        for path, info in sorted(self.fs.find(base, detail=True).items()):
            name = path.rsplit("/", 1)[-1]
            if len(name) == 64:
                yield ArtifactInfo(name, int(info.get("size") or 0))
