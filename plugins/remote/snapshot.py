"""The code a remote job runs: a git commit plus the uncommitted diff, or a working-tree archive."""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from forgeml.errors import ValidationError

# Never shipped: workspace state, VCS internals, caches and environments.
EXCLUDED_DIRS = frozenset({".forgeml", ".git", "__pycache__", ".venv", "venv", ".mypy_cache", ".pytest_cache",
                           ".ruff_cache", "node_modules", ".ipynb_checkpoints"})
EXCLUDED_PATTERNS = ("*.pyc", "*.pyo", "*.tmp*")
MAX_FILE_BYTES = 50 * 1024 * 1024
CHUNK = 1 << 20


@dataclass(frozen=True)
class SnapshotFile:
    """One file of a snapshot: where it lives locally and its content hash."""

    path: str  # relative, forward slashes
    sha256: str
    size: int
    mode: int
    source: Path


@dataclass
class CodeSnapshot:
    """The files a job needs, keyed by relative path, plus their provenance (commit and diff)."""

    root: Path
    kind: str  # "git" or "archive"
    files: dict[str, SnapshotFile] = field(default_factory=dict)
    commit: str | None = None
    diff: str = ""
    workdir: str = "."  # the job's working folder relative to root

    @property
    def manifest(self) -> dict[str, str]:
        """Return {relative path: sha256}, the sync manifest."""
        return {p: f.sha256 for p, f in sorted(self.files.items())}

    @property
    def digest(self) -> str:
        """Return one hash over the whole manifest: equal snapshots have equal digests."""
        h = hashlib.sha256()
        for path, sha in self.manifest.items():
            h.update(f"{path}\0{sha}\n".encode())
        return h.hexdigest()

    def provenance(self) -> dict[str, object]:
        """Return what to record on the run: kind, commit, whether it was dirty, file count."""
        return {"kind": self.kind, "commit": self.commit, "dirty": bool(self.diff), "files": len(self.files),
                "digest": self.digest}

    def write_archive(self, dest: Path) -> Path:
        """Write the snapshot as a gzip tar (for targets that take one blob instead of a file sync)."""
        with tarfile.open(dest, "w:gz") as tar:
            for path, f in sorted(self.files.items()):
                info = tar.gettarinfo(str(f.source), arcname=path)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(f.source, "rb") as fh:
                    tar.addfile(info, fh)
            if self.diff:
                data = self.diff.encode()
                info = tarfile.TarInfo(".forgeml-snapshot.diff")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return dest


def sha256_of(path: Path) -> str:
    """Return a file's sha256 hex digest."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=60)


def _git_root(path: Path) -> Path | None:
    try:
        proc = _git(path, "rev-parse", "--show-toplevel")
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    return Path(proc.stdout.decode().strip()) if proc.returncode == 0 else None


def _excluded(rel: str, exclude: tuple[str, ...]) -> bool:
    parts = rel.split("/")
    if any(p in EXCLUDED_DIRS for p in parts[:-1]):
        return True
    return any(fnmatch.fnmatch(parts[-1], pat) or fnmatch.fnmatch(rel, pat) for pat in (*EXCLUDED_PATTERNS, *exclude))


def _add(snapshot: CodeSnapshot, rel: str) -> None:
    source = snapshot.root / rel
    if not source.is_file() or source.is_symlink():
        return
    stat = source.stat()
    if stat.st_size > MAX_FILE_BYTES:
        raise ValidationError(
            f"{source} is {stat.st_size // (1024 * 1024)} MiB; code snapshots skip nothing silently - "
            f"move data out of the code folder (register it as a dataset) or add it to the target's exclude list"
        )
    snapshot.files[rel] = SnapshotFile(rel, sha256_of(source), stat.st_size, stat.st_mode & 0o777, source)


def take_snapshot(workdir: str | Path, mode: str = "auto", exclude: tuple[str, ...] = ()) -> CodeSnapshot:
    """Snapshot the code around workdir: git-tracked and untracked-not-ignored files, or the whole tree.

    ``mode`` is "auto" (git when workdir is in a repository), "git", "archive" or "none" (no files).
    """
    workdir = Path(workdir).resolve()
    if not workdir.is_dir():
        raise ValidationError(f"job working folder {workdir} does not exist")
    if mode not in {"auto", "git", "archive", "none"}:
        raise ValidationError(f"code snapshot mode {mode!r} is not one of auto, git, archive, none")
    if mode == "none":
        return CodeSnapshot(root=workdir, kind="none")
    git_root = _git_root(workdir) if mode in {"auto", "git"} else None
    if mode == "git" and git_root is None:
        raise ValidationError(f"{workdir} is not inside a git repository; use code = \"archive\"")
    if git_root is not None:
        snap = CodeSnapshot(root=git_root, kind="git", workdir=os.path.relpath(workdir, git_root))
        head = _git(git_root, "rev-parse", "HEAD")
        snap.commit = head.stdout.decode().strip() if head.returncode == 0 else None
        if snap.commit:
            snap.diff = _git(git_root, "diff", "HEAD", "--binary").stdout.decode(errors="replace")
        listed = _git(git_root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        for rel in sorted(set(listed.stdout.decode().split("\0")) - {""}):
            if not _excluded(rel, exclude):
                _add(snap, rel)
        return snap
    snap = CodeSnapshot(root=workdir, kind="archive")
    for dirpath, dirnames, filenames in os.walk(workdir):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS)
        for name in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), workdir).replace(os.sep, "/")
            if not _excluded(rel, exclude):
                _add(snap, rel)
    return snap
