"""`forgeml plugin new` writes a package that passes its own conformance test as generated."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from forgeml.plugin_template import KINDS


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_generated_plugin_passes_its_own_tests(kind: str, tmp_path: Path) -> None:
    """Generate, put the package on the path, and run its tests in a subprocess: they pass."""
    from forgeml.cli import cli

    result = CliRunner().invoke(cli, ["plugin", "new", kind, "acme", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / "forgeml-acme"
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["forgeml"] == {"acme": "forgeml_acme.plugin"}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), *sys.path]), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "forgeml.testing.fixtures", "-p",
                           "no:cacheprovider"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout, done.stdout


def test_a_generated_plugin_registers_through_its_entry_point_module(tmp_path: Path) -> None:
    """The module the entry point names registers the provider under the chosen name."""
    from forgeml.plugin_template import new_plugin

    root = new_plugin("notifier", "pager_duty", tmp_path)
    code = ("from forgeml.plugin_manager import make_plugin_manager\n"
            "import forgeml_pager_duty.plugin as p\n"
            "host = make_plugin_manager(extra=[('pager_duty', p)])\n"
            "print(sorted(host.providers('notifiers')))\n")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(root)),
                         capture_output=True, text=True, timeout=120)
    assert "'pager_duty'" in out.stdout, out.stderr


def test_bad_names_and_existing_folders_are_refused(tmp_path: Path) -> None:
    """A name that is no Python identifier, or a folder that exists, is a one-line error."""
    from forgeml.errors import ForgeError
    from forgeml.plugin_template import new_plugin

    with pytest.raises(ForgeError, match="lower-case"):
        new_plugin("notifier", "Bad-Name", tmp_path)
    new_plugin("monitor", "shift", tmp_path)
    with pytest.raises(ForgeError, match="already exists"):
        new_plugin("monitor", "shift", tmp_path)
    with pytest.raises(ForgeError, match="did you mean 'monitor'"):
        new_plugin("monitr", "x", tmp_path)
