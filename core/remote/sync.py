"""Content-hash sync: files go once into the host's object cache, then each job gets its own copy."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from forgeml.errors import RemoteError
from forgeml.remote.hosts import Host
from forgeml.remote.snapshot import CodeSnapshot, SnapshotFile, sha256_of


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


def sync_tree(host: Host, root: str, dest: str, files: dict[str, SnapshotFile]) -> SyncReport:
    """Make dest hold exactly these files, uploading only contents the host's cache lacks."""
    cache = objects_dir(root)
    host.makedirs(cache)
    known = set(host.listdir(cache))
    sent = sent_bytes = 0
    for f in files.values():
        if f.sha256 in known:
            continue
        host.put_file(f.source, f"{cache}/{f.sha256}")
        known.add(f.sha256)
        sent += 1
        sent_bytes += f.size
    lines = ["set -e", f"mkdir -p {shlex.quote(dest)}", f"cd {shlex.quote(dest)}"]
    for folder in sorted({str(Path(p).parent) for p in files} - {"."}):
        lines.append(f"mkdir -p {shlex.quote(folder)}")
    for path, f in sorted(files.items()):
        # copies, not hard links: a job that edits its own files must not change the cache
        lines.append(f"cp {shlex.quote(cache + '/' + f.sha256)} {shlex.quote(path)}")
        if f.mode & 0o111:
            lines.append(f"chmod {f.mode:o} {shlex.quote(path)}")
    script = f"{dest}.sync.sh"
    host.write_bytes(script, ("\n".join(lines) + "\n").encode())
    result = host.run(f"sh {shlex.quote(script)} && rm -f {shlex.quote(script)}", timeout=300)
    if not result.ok:
        raise RemoteError(f"materializing {len(files)} files in {dest} on {host.label} failed: {result.stderr.strip()}")
    return SyncReport(len(files), sent, sent_bytes)


def sync_snapshot(host: Host, root: str, job_dir: str, snapshot: CodeSnapshot,
                  inputs: dict[str, Path] | None = None) -> SyncReport:
    """Sync a code snapshot into job_dir/code and declared inputs into job_dir/inputs."""
    report = sync_tree(host, root, f"{job_dir}/code", snapshot.files)
    meta = {"provenance": snapshot.provenance(), "manifest": snapshot.manifest}
    host.write_bytes(f"{job_dir}/snapshot.json", json.dumps(meta, indent=1).encode())
    if snapshot.diff:
        host.write_bytes(f"{job_dir}/snapshot.diff", snapshot.diff.encode())
    if inputs:
        extra = sync_tree(host, root, f"{job_dir}/inputs", input_files(inputs))
        report = SyncReport(report.files + extra.files, report.sent + extra.sent, report.bytes_sent + extra.bytes_sent)
    return report
