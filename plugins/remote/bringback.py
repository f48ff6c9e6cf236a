"""The remote forgeml workspace: set it up, seed the job's run there, and bring runs, artifacts and logs back."""

from __future__ import annotations

import inspect
import json
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeml.errors import RemoteError
from forgeml.paths import safe_digest
from forgeml.plugins.remote.hosts import Host

# Runs on the remote side with FORGEML_HOME set: prints the run's export plus where its artifact objects are.
EXPORT_SNIPPET = r"""
import json, re, sys
from forgeml.errors import NotFoundError
from forgeml.workspace import current
from forgeml.tracking import export_run
HEX = re.compile(r"^[0-9a-f]{64}$")
try:
    data = export_run(sys.argv[1], inline_artifacts=False)
except NotFoundError:
    print(json.dumps({"run": None}))
    raise SystemExit(0)
found = set()
def walk(v):
    if isinstance(v, dict):
        for x in v.values(): walk(x)
    elif isinstance(v, (list, tuple)):
        for x in v: walk(x)
    elif isinstance(v, str) and HEX.match(v):
        found.add(v)
walk(data)
ws = current()
root = str(ws.artifacts.root).removeprefix("file://")
objects = {d: f"{root}/objects/{d[:2]}/{d}" for d in sorted(found) if ws.artifacts.exists(d)}
print(json.dumps({"run": data, "objects": objects}, default=str))
"""

# Runs on the remote side: imports a run exported here, so the job's start_run() attaches to it.
IMPORT_SNIPPET = r"""
import json, sys
from forgeml.tracking import import_run
with open(sys.argv[1]) as f:
    import_run(json.load(f))
"""


@dataclass
class RemoteWorkspace:
    """A forgeml workspace on a remote host that jobs log into, driven with the host's python."""

    host: Host
    path: str
    python: str = "python3"
    _ready: bool = False

    def _env(self) -> str:
        return f"FORGEML_HOME={shlex.quote(self.path)}"

    def ensure(self) -> None:
        """Create the workspace once; a host without forgeml fails here with how to fix it."""
        if self._ready or self.host.exists(f"{self.path}/.forgeml"):
            self._ready = True
            return
        py = shlex.quote(self.python)
        made = self.host.run(f"env -u FORGEML_HOME {py} -m forgeml init {shlex.quote(self.path)}", timeout=120)
        if not made.ok:
            last = (made.stderr.strip().splitlines() or ["no output"])[-1]
            hint = (f"forgeml is not installed for {self.python!r} there: pip install forgeml on that host or set "
                    f"the target's python = \"/path/to/python\"" if "No module named" in made.stderr
                    or made.exit_code == 127 else "see the message")
            raise RemoteError(f"creating the remote workspace {self.path} on {self.host.label} failed: {last} ({hint})")
        self._ready = True

    def python_snippet(self, code: str, *args: str, timeout: float = 120) -> str:
        """Run a python snippet remotely inside the workspace and return its stdout."""
        self.ensure()
        argv = " ".join(shlex.quote(a) for a in args)
        result = self.host.run(f"{self._env()} {shlex.quote(self.python)} - {argv}", timeout=timeout,
                               stdin=code.encode())
        if not result.ok:
            raise RemoteError(f"remote forgeml on {self.host.label} failed: {result.stderr.strip()[-600:]}")
        return result.stdout

    def seed_run(self, run_data: dict[str, Any], job_dir: str) -> None:
        """Import a local run's export remotely so the job logs into the same run id."""
        path = f"{job_dir}/run.json"
        self.host.write_bytes(path, json.dumps(run_data, default=str).encode())
        self.python_snippet(IMPORT_SNIPPET, path)

    def export(self, run_id: str) -> dict[str, Any]:
        """Return the remote run's export and its artifact object paths ({"run": None} when absent)."""
        out = self.python_snippet(EXPORT_SNIPPET, run_id)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if not lines:
            raise RemoteError(f"remote export of run {run_id} on {self.host.label} printed no JSON: {out[-300:]}")
        return json.loads(lines[-1])


def _tracking() -> Any:
    try:
        from forgeml import tracking
    except ImportError as e:  # pragma: no cover - tracking ships with forgeml
        raise RemoteError(f"forgeml.tracking is unavailable: {e}") from e
    for name in ("export_run", "import_run"):
        if not hasattr(tracking, name):
            raise RemoteError(f"forgeml.tracking has no {name}(); remote runs cannot be brought back")
    return tracking


def _call(fn: Any, *args: Any, workspace: Any = None) -> Any:
    """Call a tracking function, passing the workspace when it accepts one."""
    if workspace is not None and "workspace" in inspect.signature(fn).parameters:
        return fn(*args, workspace=workspace)
    return fn(*args)


def export_local_run(run_id: str, workspace: Any = None) -> dict[str, Any] | None:
    """Return a local run's export, or None when the run does not exist here."""
    from forgeml.errors import NotFoundError

    try:
        return _call(_tracking().export_run, run_id, workspace=workspace)
    except NotFoundError:
        return None


@dataclass(frozen=True)
class BroughtBack:
    """What one bring-back did."""

    run_found: bool
    artifacts_copied: int


def bring_back_run(remote: RemoteWorkspace, run_id: str, workspace: Any) -> BroughtBack:
    """Copy the remote run's artifact objects into the local store, then import the run's record."""
    exported = remote.export(run_id)
    data = exported.get("run")
    if data is None:
        return BroughtBack(False, 0)
    copied = 0
    store = workspace.artifacts
    for digest, path in (exported.get("objects") or {}).items():
        if store.exists(safe_digest(digest, f"artifact from {remote.host.label}")):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / digest
            remote.host.get_file(path, local)
            got = store.put_file(local)
        if got != digest:
            raise RemoteError(f"artifact {digest[:12]} from {remote.host.label} arrived corrupted (got {got[:12]})")
        copied += 1
    _call(_tracking().import_run, data, workspace=workspace)
    return BroughtBack(True, copied)


def append_log(host: Host, remote_log: str, local_log: str | Path | None) -> int:
    """Append what the remote log gained since the local copy's size; return bytes appended."""
    if not local_log:
        return 0
    local = Path(local_log)
    local.parent.mkdir(parents=True, exist_ok=True)
    offset = local.stat().st_size if local.exists() else 0
    data = host.read_bytes(remote_log, offset)
    if data:
        with open(local, "ab") as f:
            f.write(data)
    return len(data)
