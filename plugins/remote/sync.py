"""Content-hash sync: files go once into the host's object cache, then each job gets its own copy."""

from __future__ import annotations

import io
import json
import shlex
import tarfile
from dataclasses import dataclass
from pathlib import Path

from forgeml.errors import RemoteError
from forgeml.plugins.remote.hosts import Host
from forgeml.plugins.remote.snapshot import CodeSnapshot, SnapshotFile, sha256_of


@dataclass(frozen=True)
class SyncReport:
    """What one sync did: files in the job's tree, and how many (and how many bytes) were sent."""

    files: int
    sent: int
    bytes_sent: int


def objects_dir(root: str) -> str:
    """Return the host's object cache folder under a remote root."""
    return f"{root}/objects"


def input_files(paths: dict[str, Path]) -> dict[str, SnapshotFile]:
    """Turn {destination relative path: local file} into hashed snapshot entries."""
    out = {}
    for rel, local in paths.items():
        local = Path(local)
        if not local.is_file():
            raise RemoteError(f"declared input {local} is not a file; give files (or register a dataset)")
        st = local.stat()
        out[rel] = SnapshotFile(rel, sha256_of(local), st.st_size, st.st_mode & 0o777, local)
    return out


BATCH_BYTES = 64 * 1024 * 1024

# Copies cached objects into place in one process (one fork per job, not one per file).
MATERIALIZE = (
    "import json, os, shutil, sys\n"
    "cache, dest = sys.argv[1], sys.argv[2]\n"
    "for path, sha, mode in json.load(sys.stdin):\n"
    "    target = os.path.join(dest, path)\n"
    "    os.makedirs(os.path.dirname(target), exist_ok=True)\n"
    "    shutil.copyfile(os.path.join(cache, sha), target)\n"
    "    if mode & 0o111: os.chmod(target, mode)\n"
)


def _upload(host: Host, cache: str, missing: list[SnapshotFile]) -> None:
    """Send missing objects as tar streams into the cache: one round trip per batch, not per file."""
    batch: list[SnapshotFile] = []
    size = 0
    for f in [*missing, None]:
        if f is not None and (not batch or size + f.size <= BATCH_BYTES):
            batch.append(f)
            size += f.size
            continue
        if batch:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                for item in batch:
                    tar.add(str(item.source), arcname=item.sha256, recursive=False)
            result = host.run(f"mkdir -p {shlex.quote(cache)} && tar -xf - -C {shlex.quote(cache)}", timeout=600,
                              stdin=buffer.getvalue())
            if not result.ok:
                raise RemoteError(f"uploading {len(batch)} files to {host.label} failed: {result.stderr.strip()[-300:]}")
        batch, size = ([f], f.size) if f is not None else ([], 0)


def sync_tree(host: Host, root: str, dest: str, files: dict[str, SnapshotFile], python: str = "python3") -> SyncReport:
    """Make dest hold these files, uploading only contents the host's cache lacks."""
    cache = objects_dir(root)
    known = set(host.listdir(cache))
    missing = list({f.sha256: f for f in files.values() if f.sha256 not in known}.values())
    _upload(host, cache, missing)
    entries = [[path, f.sha256, f.mode] for path, f in sorted(files.items())]
    command = (f"mkdir -p {shlex.quote(dest)} && {shlex.quote(python)} -I -S -c {shlex.quote(MATERIALIZE)} "
               f"{shlex.quote(cache)} {shlex.quote(dest)}")
    result = host.run(command, timeout=300, stdin=json.dumps(entries).encode())
    if not result.ok:
        raise RemoteError(f"materializing {len(files)} files in {dest} on {host.label} failed: "
                          f"{result.stderr.strip()[-400:]}")
    return SyncReport(len(files), len(missing), sum(f.size for f in missing))


def sync_snapshot(host: Host, root: str, job_dir: str, snapshot: CodeSnapshot,
                  inputs: dict[str, Path] | None = None, python: str = "python3") -> SyncReport:
    """Sync a code snapshot into job_dir/code and declared inputs into job_dir/inputs."""
    report = sync_tree(host, root, f"{job_dir}/code", snapshot.files, python)
    meta = {"provenance": snapshot.provenance(), "manifest": snapshot.manifest}
    host.write_bytes(f"{job_dir}/snapshot.json", json.dumps(meta, indent=1).encode())
    if snapshot.diff:
        host.write_bytes(f"{job_dir}/snapshot.diff", snapshot.diff.encode())
    if inputs:
        extra = sync_tree(host, root, f"{job_dir}/inputs", input_files(inputs), python)
        report = SyncReport(report.files + extra.files, report.sent + extra.sent, report.bytes_sent + extra.bytes_sent)
    return report
