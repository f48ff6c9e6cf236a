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


LAYER_OF_KIND = {"notifier": "notifiers", "monitor": "monitors", "runtime": "runtimes",
                 "gpu_inventory": "gpu_inventories", "artifact_store": "artifact_stores",
                 "metadata_store": "metadata_stores", "online_store": "online_stores", "offline_store": "offline_stores",
                 "vector_store": "vector_stores", "executor": "executors", "placement_policy": "placement_policies",
                 "gate": "gates", "stream_source": "stream_sources", "annotation_backend": "annotation_backends",
                 "query_strategy": "query_strategies", "retriever": "retrievers", "reranker": "rerankers"}


def test_every_provider_layer_has_a_template() -> None:
    """`plugin new` covers every provider layer: a layer added without a template fails here."""
    from forgeml.layers import LAYERS

    assert set(LAYER_OF_KIND) == set(KINDS)
    missing = {layer.name for layer in LAYERS} - set(LAYER_OF_KIND.values())
    assert not missing, missing


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_generated_plugin_loads_as_a_local_plugin(kind: str, tmp_path: Path) -> None:
    """Listed under [plugins] local in a workspace's plugins.toml, the module registers its provider by name."""
    from forgeml.plugin_template import new_plugin

    root = new_plugin(kind, "acme_co", tmp_path)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "plugins.toml").write_text(f'[plugins]\nlocal = ["{root / "forgeml_acme_co" / "plugin.py"}"]\n')
    code = ("from forgeml.workspace import Workspace\n"
            f"print(sorted(Workspace({str(ws)!r}).plugins.providers({LAYER_OF_KIND[kind]!r})))\n")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(root)),
                         capture_output=True, text=True, timeout=120)
    assert "'acme_co'" in out.stdout, out.stdout + out.stderr


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
