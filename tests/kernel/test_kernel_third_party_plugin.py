"""A third-party plugin, installed as a real distribution with entry points, replaces a built-in store.

The distribution is a ``<name>.dist-info`` folder (METADATA + entry_points.txt) beside its module on
``PYTHONPATH``: exactly what pip leaves in site-packages, so discovery goes through
``importlib.metadata`` as it would for a package installed from an index.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

STORE_MODULE = '''
"""A third-party artifact store: the built-in engine under a different layout and name."""
from dataclasses import dataclass

from forgeml import hookimpl
from forgeml.config import setting

__version__ = "1.2.3"


@dataclass
class VaultSettings:
    """Settings of the vault store."""

    folder: str = setting("vault", "Folder under the workspace.")


class VaultStore:
    """Wraps the fsspec engine so the test can tell which store the workspace opened."""

    def __init__(self, root):
        from forgeml.storage.artifacts import FsspecArtifactStore

        self._engine = FsspecArtifactStore(root)
        self.root = root

    def __getattr__(self, name):
        return getattr(self._engine, name)


@hookimpl
def forgeml_register_artifact_stores(register):
    register("vault", lambda settings, workspace: VaultStore(str(workspace.resolve(settings.folder))),
             settings=VaultSettings, description="objects in a vault folder")
'''


def _install_distribution(site: Path, dist: str, version: str, entry_points: dict[str, str],
                          modules: dict[str, str]) -> None:
    info = site / f"{dist}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[forgeml]\n{lines}")
    for name, text in modules.items():
        (site / f"{name}.py").write_text(text)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder with two installed distributions: a working store plugin and a plugin that fails to import."""
    site = tmp_path / "site"
    _install_distribution(site, "forgeml_vault", "1.2.3", {"vault": "forgeml_vault"},
                          {"forgeml_vault": STORE_MODULE})
    _install_distribution(site, "forgeml_broken", "0.1", {"broken": "forgeml_broken"},
                          {"forgeml_broken": "raise RuntimeError('this plugin is broken on purpose')\n"})
    return site


def _run(code: str, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("FORGEML_HOME", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def test_installed_plugin_replaces_the_artifact_store(site: Path, tmp_path: Path) -> None:
    """Editing plugins.toml to ``[storage.artifacts] plugin = "vault"`` makes the workspace use it."""
    root = tmp_path / "ws"
    (root / ".forgeml").mkdir(parents=True)
    (root / "plugins.toml").write_text('[storage.artifacts]\nplugin = "vault"\nfolder = "my-vault"\n')
    proc = _run("""
        import json
        from forgeml.workspace import Workspace
        ws = Workspace.find()
        store = ws.artifacts
        digest = store.put_bytes(b"weights")
        info = {i.name: i for i in ws.plugins.infos}
        print(json.dumps({
            "store": store.__class__.__name__,
            "root": store.root,
            "roundtrip": store.get_bytes(digest).decode(),
            "vault": [info["vault"].origin, info["vault"].version, info["vault"].enabled],
            "broken": [info["broken"].enabled, info["broken"].error],
        }))
    """, site, root)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["store"] == "VaultStore"
    assert out["root"] == str(root / "my-vault")
    assert out["roundtrip"] == "weights"
    assert (root / "my-vault" / "objects").is_dir()
    assert out["vault"] == ["installed", "1.2.3", True]
    assert out["broken"][0] is False and "broken on purpose" in out["broken"][1]
    assert "plugin 'broken' failed to load and was skipped" in proc.stderr


def test_cli_lists_the_installed_plugin(site: Path, tmp_path: Path) -> None:
    """``forgeml plugins list --json`` shows the installed plugin, and the broken one with its error."""
    proc = _run("from forgeml.cli import main; main(['plugins', 'list', '--json'])", site, tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["vault"]["origin"] == "installed" and rows["vault"]["enabled"] == "yes"
    assert rows["vault"]["hooks"] == "register_artifact_stores"
    assert rows["broken"]["enabled"] == "error" and "broken on purpose" in rows["broken"]["hooks"]
    assert rows["embedded"]["origin"] == "built-in"


def test_default_store_is_kept_until_plugins_toml_says_otherwise(site: Path, tmp_path: Path) -> None:
    """Installing a plugin changes nothing by itself: the default artifact store stays fsspec."""
    root = tmp_path / "ws"
    (root / ".forgeml").mkdir(parents=True)
    proc = _run("""
        from forgeml.workspace import Workspace
        print(Workspace.find().artifacts.__class__.__name__)
    """, site, root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "FsspecArtifactStore"
