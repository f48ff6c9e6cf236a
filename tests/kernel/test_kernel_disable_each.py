"""Every built-in except the essential ones can be disabled: the workspace opens, doctor runs, other layers work.

Each case writes ``[plugins] disabled = [NAME]`` into a fresh workspace and runs `forgeml doctor`
and one read command per layer. A command may fail only with a one-line ForgeError naming the
disabled plugin (its own layer has no provider left); any other failure is a bug.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from forgeml.errors import ForgeError
from forgeml.installed import entry_points
from forgeml.plugin_manager import ENTRY_POINT_GROUP, ESSENTIAL

BUILT_IN = sorted({ep.name for ep in entry_points(ENTRY_POINT_GROUP)
                   if ep.dist is not None and ep.dist.name == "forgeml"} - set(ESSENTIAL))

COMMANDS = [
    ["config", "show"],
    ["plugins", "list"],
    ["runs", "ls"],
    ["jobs", "ls"],
    ["targets", "ls"],
    ["models", "ls"],
    ["datasets", "ls"],
    ["features", "ls"],
    ["monitor", "alerts", "ls"],
    ["pipeline", "ls"],
]


@pytest.fixture
def disabled_workspace(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from forgeml.workspace import Workspace, set_current

    root = tmp_path / "ws"
    Workspace.init(root).close()
    text = (root / "plugins.toml").read_text().replace("disabled = []", f'disabled = ["{request.param}"]', 1)
    (root / "plugins.toml").write_text(text)
    monkeypatch.setenv("FORGEML_HOME", str(root))
    monkeypatch.chdir(root)
    set_current(None)
    yield request.param
    set_current(None)


def _acceptable(result: Any, plugin: str) -> bool:
    if result.exit_code == 0:
        return True
    return isinstance(result.exception, ForgeError) and repr(plugin) in str(result.exception)


@pytest.mark.parametrize("disabled_workspace", BUILT_IN, indirect=True)
def test_each_built_in_can_be_disabled(disabled_workspace: str) -> None:
    """With one built-in disabled, doctor reports on every other plugin and the other layers' commands work."""
    from forgeml.cli import cli

    doctor = CliRunner().invoke(cli, ["doctor", "--json"])
    assert doctor.exception is None or isinstance(doctor.exception, SystemExit), doctor.output
    checks = json.loads(doctor.output)
    assert checks, "doctor reported nothing"
    for args in COMMANDS:
        result = CliRunner().invoke(cli, args)
        assert _acceptable(result, disabled_workspace), (
            f"`forgeml {' '.join(args)}` with {disabled_workspace!r} disabled: exit {result.exit_code}, "
            f"{type(result.exception).__name__}: {result.exception}\n{result.output[-1500:]}")


def test_every_built_in_but_the_essential_is_covered() -> None:
    """The list above is every built-in entry point (a new built-in joins it automatically)."""
    assert len(BUILT_IN) >= 10 and "embedded" not in BUILT_IN
