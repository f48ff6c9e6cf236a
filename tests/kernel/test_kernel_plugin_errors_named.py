"""An exception from an executor, store or notifier plugin reaches the user as one line naming the plugin.

Throwaway plugins raise plain Python exceptions from their methods; the workspace hands out providers
guarded at the registry boundary, so the caller sees a PluginError ("artifact store 'flaky' (plugin
'throwaway') failed in get_file(): ...") with the original exception chained.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from forgeml.errors import PluginError

THROWAWAY = '''
from forgeml import hookimpl
from forgeml.plugins.local.executor import LocalExecutor
from forgeml.plugins.local.settings import LocalTargetSettings
from forgeml.storage.artifacts import FsspecArtifactStore


class FlakyArtifacts(FsspecArtifactStore):
    """Stores objects, then cannot read any back."""

    def get_bytes(self, digest):
        raise OSError("device unplugged")

    def get_file(self, digest, dest):
        raise OSError("device unplugged")

    def open(self, digest):
        raise OSError("device unplugged")


class BrokenLauncher(LocalExecutor):
    """Launches nothing: its launch has a bug."""

    def launch(self, request):
        return {}["no such handle"]


class FailingNotifier:
    """Raises a plain exception instead of a ForgeError."""

    name = "failing"

    def notify(self, alert):
        raise ConnectionResetError("peer went away")


@hookimpl
def forgeml_register_artifact_stores(register):
    register("flaky", lambda settings, workspace: FlakyArtifacts(str(workspace.root / ".forgeml" / "flaky")))


@hookimpl
def forgeml_register_executors(register):
    register("broken", lambda settings, workspace: BrokenLauncher(LocalTargetSettings(), workspace))


@hookimpl
def forgeml_register_notifiers(register):
    register("failing", lambda settings, workspace: FailingNotifier())
'''

CONFIG = '''[plugins]
local = ["throwaway.py"]

[storage.artifacts]
plugin = "flaky"

[compute.targets.broken]
plugin = "broken"

[monitoring.notifiers.pager]
plugin = "failing"
'''


@pytest.fixture
def ws(tmp_path: Path) -> Any:
    """A workspace whose artifact store, one compute target and one notifier come from the throwaway plugin."""
    from forgeml.workspace import Workspace

    root = tmp_path / "ws"
    root.mkdir()
    (root / "throwaway.py").write_text(THROWAWAY)
    (root / "plugins.toml").write_text(CONFIG)
    ws = Workspace(root)
    yield ws
    ws.close()


def test_a_store_method_that_raises_is_named(ws: Any) -> None:
    """The store's OSError becomes a PluginError naming the store, its plugin and the method; the cause is kept."""
    digest = ws.artifacts.put_bytes(b"weights")
    with pytest.raises(PluginError, match=r"^artifact store 'flaky' \(plugin 'throwaway'\) failed in get_bytes\(\): "
                                          r"OSError: device unplugged$") as caught:
        ws.artifacts.get_bytes(digest)
    assert isinstance(caught.value.__cause__, OSError)


def test_an_executor_that_raises_fails_the_job_naming_the_plugin(ws: Any) -> None:
    """A launch bug fails the attempt with a reason naming the executor; the scheduler keeps going."""
    from forgeml.jobs import JobSpec, Scheduler, get_job, submit

    job = submit(JobSpec(command=["true"], target="broken"), workspace=ws)
    Scheduler(ws).run_until_idle(timeout=30)
    done = get_job(job.id, ws)
    assert done.state == "FAILED", done
    assert "executor 'broken' (plugin 'throwaway') failed in launch(): KeyError: 'no such handle'" in done.reason


def test_a_notifier_that_raises_is_recorded_naming_the_plugin(ws: Any) -> None:
    """The notifier's ConnectionResetError is a PluginError naming it, which alert delivery records."""
    from datetime import UTC, datetime

    from forgeml.monitoring.alerts import Alert, deliver, notifiers

    named = r"notifier 'failing' \(plugin 'throwaway'\) failed in notify\(\): ConnectionResetError: peer went away"
    with pytest.raises(PluginError, match=named):
        notifiers(ws)["pager"].notify({"id": 1, "message": "drift"})
    now = datetime.now(UTC)
    alert = Alert(1, "drift", "model", "psi", 0.4, 0.2, ">", "warning", "firing", "drift", None, now, now)
    (delivery,) = deliver(ws, alert)
    assert not delivery["ok"] and re.search(named, delivery["error"]), delivery


def test_the_cli_prints_one_line_naming_the_plugin(ws: Any, tmp_path: Path) -> None:
    """`forgeml runs download` through a store that cannot read: exit 2 and one line, no traceback."""
    from forgeml.tracking import start_run

    with start_run(workspace=ws) as run:
        src = tmp_path / "model.txt"
        src.write_text("weights")
        run.log_artifact(src)
    env = dict(os.environ, FORGEML_HOME=str(ws.root))
    env.pop("FORGEML_URL", None)
    done = subprocess.run([sys.executable, "-m", "forgeml", "runs", "download", run.id, "--dest", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, cwd=ws.root, timeout=120)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "artifact store 'flaky' (plugin 'throwaway') failed in" in lines[0] and "device unplugged" in lines[0]
