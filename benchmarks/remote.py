"""Code sync to an SSH host: content-hash sync (cold, unchanged, one file changed) vs re-sending everything.

Needs the loopback sshd of the test suite (tests/services/sshd.sh start); prints one JSON line, or a
JSON line with "skipped" when no sshd answers. The peer is the usual approach of copying the whole
tree on every launch (`scp -r`), run against the same server in the same process.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import finish

FILES = 300
FILE_BYTES = 16 * 1024


def _server() -> dict[str, str] | None:
    state = Path(os.environ.get("FORGEML_SSHD_DIR") or Path(os.environ.get("TMPDIR") or "/tmp") / "forgeml-sshd")
    if not (state / "id_ed25519").exists() or not (state / "user").exists():
        return None
    return {"host": "127.0.0.1", "port": os.environ.get("FORGEML_SSHD_PORT", "2222"),
            "user": (state / "user").read_text().strip(), "key": str(state / "id_ed25519"),
            "known_hosts": str(state / "known_hosts")}


def _make_tree(root: Path) -> None:
    rng = random.Random(7)
    for i in range(FILES):
        path = root / f"pkg{i % 10}" / f"module_{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(rng.getrandbits(8) for _ in range(FILE_BYTES)))


def main() -> None:
    server = _server()
    if server is None:
        finish("remote", {"benchmark": "remote_sync", "skipped": "no sshd state folder; run tests/services/sshd.sh start"})
        return
    from forgeml.plugins.remote.hosts import SshEndpoint, SshHost
    from forgeml.plugins.remote.snapshot import take_snapshot
    from forgeml.plugins.remote.sync import sync_snapshot

    host = SshHost(SshEndpoint(server["host"], int(server["port"]), server["user"], (server["key"],), False,
                               server["known_hosts"]))
    try:
        host.run("true")
    except Exception as e:  # noqa: BLE001 - any failure means the server is not there
        finish("remote", {"benchmark": "remote_sync", "skipped": f"sshd not answering: {e}"})
        return
    with tempfile.TemporaryDirectory() as tmp:
        code, remote = Path(tmp) / "code", Path(tmp) / "remote"
        _make_tree(code)
        out: dict[str, object] = {"benchmark": "remote_sync", "files": FILES, "bytes": FILES * FILE_BYTES}
        t = time.perf_counter()
        first = sync_snapshot(host, str(remote), f"{remote}/jobs/a", take_snapshot(code))
        out["cold_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        again = sync_snapshot(host, str(remote), f"{remote}/jobs/b", take_snapshot(code))
        out["unchanged_s"] = round(time.perf_counter() - t, 3)
        (code / "pkg0" / "module_0.py").write_bytes(b"changed")
        t = time.perf_counter()
        one = sync_snapshot(host, str(remote), f"{remote}/jobs/c", take_snapshot(code))
        out["one_changed_s"] = round(time.perf_counter() - t, 3)
        out["sent"] = {"cold": first.sent, "unchanged": again.sent, "one_changed": one.sent}
        if shutil.which("scp"):
            t = time.perf_counter()
            subprocess.run(["scp", "-q", "-r", "-P", server["port"], "-i", server["key"], "-o", "BatchMode=yes",
                            "-o", f"UserKnownHostsFile={server['known_hosts']}", "-o", "StrictHostKeyChecking=yes",
                            str(code), f"{server['user']}@{server['host']}:{remote}/scp-copy"], check=True)
            out["peer_scp_full_s"] = round(time.perf_counter() - t, 3)
            out["unchanged_vs_scp"] = round(out["peer_scp_full_s"] / max(out["unchanged_s"], 1e-9), 2)
        else:
            out["peer_scp_full_s"] = None
    host.close()
    finish("remote", out)


if __name__ == "__main__":
    main()
