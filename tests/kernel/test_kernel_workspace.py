"""Workspaces: init, discovery by walking up, FORGEML_HOME, and the process's current workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgeml import workspace as workspace_module
from forgeml.errors import WorkspaceError
from forgeml.workspace import Workspace, default_config_text


@pytest.fixture(autouse=True)
def _no_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORGEML_HOME", raising=False)
    workspace_module.set_current(None)


def test_init_writes_the_documented_config_and_dot_folder(tmp_path: Path) -> None:
    """init creates plugins.toml (the documented default), .forgeml/ and the metadata database."""
    ws = Workspace.init(tmp_path / "new")
    assert (tmp_path / "new" / "plugins.toml").read_text() == default_config_text()
    assert ws.dot.is_dir() and (ws.dot / "metadata.db").exists()
    assert ws.metadata.applied_migrations("core") == [1, 2]
    ws.close()


def test_init_keeps_an_edited_config(tmp_path: Path) -> None:
    """Running init again never overwrites the user's plugins.toml."""
    Workspace.init(tmp_path).close()
    (tmp_path / "plugins.toml").write_text('[scheduler.inventory]\nplugin = "declared"\ncount = 2\n')
    ws = Workspace.init(tmp_path)
    assert "count = 2" in (tmp_path / "plugins.toml").read_text()
    assert len(ws.gpu_inventory.devices()) == 2
    ws.close()


def test_find_walks_up_from_a_subfolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command run deep inside a workspace finds it, like git."""
    Workspace.init(tmp_path / "proj").close()
    deep = tmp_path / "proj" / "src" / "models" / "v2"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert Workspace.find().root == (tmp_path / "proj").resolve()
    assert Workspace.find(deep).root == (tmp_path / "proj").resolve()


def test_nearest_workspace_wins(tmp_path: Path) -> None:
    """A workspace nested inside another is found first from inside it."""
    Workspace.init(tmp_path / "outer").close()
    Workspace.init(tmp_path / "outer" / "inner").close()
    assert Workspace.find(tmp_path / "outer" / "inner").root == (tmp_path / "outer" / "inner").resolve()


def test_forgeml_home_overrides_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FORGEML_HOME wins over the workspace around the current directory."""
    Workspace.init(tmp_path / "here").close()
    Workspace.init(tmp_path / "there").close()
    monkeypatch.chdir(tmp_path / "here")
    monkeypatch.setenv("FORGEML_HOME", str(tmp_path / "there"))
    assert Workspace.find().root == (tmp_path / "there").resolve()


def test_forgeml_home_that_is_not_a_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FORGEML_HOME pointing at an ordinary folder says how to make it a workspace."""
    monkeypatch.setenv("FORGEML_HOME", str(tmp_path))
    with pytest.raises(WorkspaceError, match="forgeml init"):
        Workspace.find()


def test_no_workspace_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside any workspace the error says to run forgeml init."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WorkspaceError, match="no forgeml workspace .* run `forgeml init`"):
        Workspace.find()


def test_current_is_opened_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """forgeml.workspace.current() opens the process's workspace once and reuses it."""
    Workspace.init(tmp_path).close()
    monkeypatch.chdir(tmp_path)
    first = workspace_module.current()
    assert workspace_module.current() is first
    workspace_module.set_current(None)
    assert workspace_module.current() is not first


def test_resolve_is_relative_to_the_root(tmp_path: Path) -> None:
    """Relative paths from plugins.toml resolve against the workspace root; absolute ones stay."""
    ws = Workspace.init(tmp_path)
    assert ws.resolve("data/x.parquet") == tmp_path.resolve() / "data" / "x.parquet"
    assert ws.resolve("/abs/y") == Path("/abs/y")
    ws.close()


def test_workspace_fixture_is_current(workspace) -> None:
    """The shared fixture makes a fresh workspace current, with FORGEML_HOME pointing at it."""
    import os

    assert workspace_module.current() is workspace
    assert os.environ["FORGEML_HOME"] == str(workspace.root)
    assert Path.cwd() == workspace.root


def test_artifact_root_may_be_any_fsspec_url(tmp_path: Path) -> None:
    """[storage.artifacts] root accepts an fsspec URL as well as a folder."""
    root = tmp_path / "ws"
    (root / ".forgeml").mkdir(parents=True)
    (root / "plugins.toml").write_text(f'[storage.artifacts]\nroot = "memory://forgeml-ws/{tmp_path.name}"\n')
    ws = Workspace(root)
    digest = ws.artifacts.put_bytes(b"in memory")
    assert ws.artifacts.get_bytes(digest) == b"in memory"
    assert not (root / ".forgeml" / "artifacts").exists()
