"""plugins.toml, whole: every section checked at open, plugin switches that leave nothing behind, clear reasons."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from forgeml.errors import ConfigError, ForgeError


def _write(root: Path, text: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "plugins.toml").write_text(text)


def _open(root: Path) -> Any:
    from forgeml.workspace import Workspace

    return Workspace(root)


@pytest.mark.parametrize(("toml", "message"), [
    ('[monitoring.notifiers.pager]\nplugin = "webhok"\n', r"\[monitoring.notifiers.pager\].*did you mean 'webhook'"),
    ('[monitoring.notifiers.pager]\nplugin = "webhook"\nurll = "http://x"\n', r"unknown key 'urll'.*did you mean 'url'"),
    ('[[monitoring.rules]]\nname = "r"\nmetric = "drift_shar"\nthreshold = 0.3\nmodel = "m"\n', r"rules\]\] #1.*drift_shar"),
    ('[[monitoring.rules]]\nname = "r"\nmetric = "drift_share"\nthreshold = 0.3\nmodel = "m"\nnotifiers = ["pagr"]\n',
     r"unknown notifier 'pagr'"),
    ('[monitoring]\nnumeric_tests = ["psi", "kss"]\n', r"numeric_tests.*unknown monitor 'kss'"),
    ('[registry.models.churn]\ngates = [{ gate = "aprovals", reviewers = ["a"] }]\n',
     r"\[registry.models.churn\] gates\[0\].*did you mean 'approvals'"),
    ('[registry.models.churn]\ngates = [{ gate = "approvals", reviewer = ["a"] }]\n', r"unknown key 'reviewer'"),
])
def test_notifiers_rules_tests_and_gates_are_checked_when_the_workspace_opens(tmp_path: Path, toml: str,
                                                                              message: str) -> None:
    """A mistake inside [monitoring] or [registry] fails at open, naming the table, not at first use."""
    _write(tmp_path / "ws", toml)
    with pytest.raises(ForgeError, match=message):
        _open(tmp_path / "ws")


def test_a_leftover_key_names_the_plugin_it_belongs_to(tmp_path: Path) -> None:
    """Switching [storage.online] to redis by hand but keeping sqlite's path names sqlite and the way out."""
    _write(tmp_path / "ws", '[storage.online]\nplugin = "redis"\npath = ".forgeml/features/online.db"\n')
    with pytest.raises(ConfigError, match=r"\[storage.online\]: key 'path' belongs to online store 'sqlite', not "
                                          r"'redis'.*forgeml config use online_stores redis"):
        _open(tmp_path / "ws")


def test_a_disabled_plugin_named_in_a_section_is_reported_as_disabled(tmp_path: Path) -> None:
    """[storage.online] plugin = "redis" with the redis plugin disabled says so, instead of 'unknown'."""
    _write(tmp_path / "ws", '[plugins]\ndisabled = ["redis"]\n\n[storage.online]\nplugin = "redis"\n')
    with pytest.raises(ConfigError, match=r"online store 'redis' comes from plugin 'redis', which is disabled"):
        _open(tmp_path / "ws")


def test_config_use_rewrites_the_section_with_the_new_plugins_defaults(tmp_path: Path, monkeypatch: Any) -> None:
    """`forgeml config use` drops the old plugin's keys, writes the new one's defaults and keeps the rest."""
    from forgeml.cli import cli
    from forgeml.workspace import Workspace

    root = tmp_path / "ws"
    Workspace.init(root).close()
    text = (root / "plugins.toml").read_text()
    assert 'path = ".forgeml/features/online.db"' in text
    monkeypatch.setenv("FORGEML_HOME", str(root))
    result = CliRunner().invoke(cli, ["config", "use", "storage.online", "redis"])
    assert result.exit_code == 0, result.output
    assert "now uses redis" in result.output
    after = tomllib.loads((root / "plugins.toml").read_text())
    online = after["storage"]["online"]
    assert online["plugin"] == "redis" and "path" not in online and online["url"] == "redis://127.0.0.1:6379/0"
    assert after["storage"]["metadata"]["plugin"] == "sqlite"  # other tables untouched
    assert "# Redis URL" in (root / "plugins.toml").read_text()  # documented, like `forgeml init` writes
    assert CliRunner().invoke(cli, ["config", "use", "online_stores", "sqlite"]).exit_code == 0
    ws = Workspace(root)
    try:
        provider, settings = ws.config.provider("storage.online")
        assert (provider.name, settings.path) == ("sqlite", ".forgeml/features/online.db")
    finally:
        ws.close()


def test_config_use_refuses_unknown_layers_and_plugins(tmp_path: Path, monkeypatch: Any) -> None:
    """A typo in the layer or the plugin is a one-line error with a suggestion, and the file is unchanged."""
    from forgeml.cli import cli
    from forgeml.workspace import Workspace

    root = tmp_path / "ws"
    Workspace.init(root).close()
    before = (root / "plugins.toml").read_text()
    monkeypatch.setenv("FORGEML_HOME", str(root))
    bad_layer = CliRunner().invoke(cli, ["config", "use", "storage.onlin", "redis"])
    assert bad_layer.exit_code != 0 and "did you mean 'storage.online'" in str(bad_layer.exception)
    bad_plugin = CliRunner().invoke(cli, ["config", "use", "storage.online", "rediss"])
    assert bad_plugin.exit_code != 0 and "did you mean 'redis'" in str(bad_plugin.exception)
    assert (root / "plugins.toml").read_text() == before
