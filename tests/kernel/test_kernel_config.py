"""plugins.toml validation: each mistake is one line naming the file, the key and the choices."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from forgeml.config import Secret, setting
from forgeml.errors import ConfigError
from forgeml.workspace import Workspace, default_config_text


def _open(tmp_path: Path, config: str) -> Workspace:
    root = tmp_path / "ws"
    (root / ".forgeml").mkdir(parents=True, exist_ok=True)
    (root / "plugins.toml").write_text(textwrap.dedent(config))
    return Workspace(root)


def _error(tmp_path: Path, config: str) -> str:
    with pytest.raises(ConfigError) as err:
        _open(tmp_path, config)
    message = str(err.value)
    assert "\n" not in message, "config errors are one line"
    assert str(tmp_path / "ws" / "plugins.toml") in message, "config errors name the file"
    return message


def test_unknown_section(tmp_path: Path) -> None:
    """A misspelt top-level section is named with a did-you-mean and the choices."""
    message = _error(tmp_path, '[storgae.metadata]\nplugin = "sqlite"\n')
    assert "[storgae]" in message and "did you mean 'storage'" in message and "choices:" in message


def test_unknown_subsection(tmp_path: Path) -> None:
    """A misspelt provider section under [storage] lists the storage sections."""
    message = _error(tmp_path, '[storage.artefacts]\nplugin = "fsspec"\n')
    assert "storage.artefacts" in message and "did you mean 'artifacts'" in message
    assert "metadata" in message and "online" in message


def test_unknown_key(tmp_path: Path) -> None:
    """A misspelt setting names the section, the key and the valid keys."""
    message = _error(tmp_path, '[storage.metadata]\nplugin = "sqlite"\npaht = "x.db"\n')
    assert "[storage.metadata]" in message and "'paht'" in message and "did you mean 'path'" in message
    assert "busy_timeout_ms" in message


def test_unknown_key_in_plugins_section(tmp_path: Path) -> None:
    """The [plugins] table is checked like any other."""
    message = _error(tmp_path, '[plugins]\ndisable = ["nvml"]\n')
    assert "'disable'" in message and "did you mean 'disabled'" in message


def test_wrong_type(tmp_path: Path) -> None:
    """A string where an integer belongs names the key, the expected type and the value."""
    message = _error(tmp_path, '[storage.metadata]\nplugin = "sqlite"\nbusy_timeout_ms = "slow"\n')
    assert "busy_timeout_ms" in message and "expected an integer" in message and "'slow'" in message


def test_boolean_is_not_an_integer(tmp_path: Path) -> None:
    """TOML true is not accepted where a number is expected."""
    message = _error(tmp_path, '[scheduler.inventory]\nplugin = "declared"\ncount = true\n')
    assert "count" in message and "expected an integer" in message


def test_unknown_plugin_name(tmp_path: Path) -> None:
    """A provider name that no installed plugin offers lists the choices with a did-you-mean."""
    message = _error(tmp_path, '[scheduler.inventory]\nplugin = "declard"\n')
    assert "'declard'" in message and "did you mean 'declared'" in message and "nvml" in message


def test_invalid_toml(tmp_path: Path) -> None:
    """A syntax error names the file and the line."""
    message = _error(tmp_path, '[storage.metadata\nplugin = "sqlite"\n')
    assert "not valid TOML" in message and "line 1" in message


def test_settings_of_a_provider_plugin_are_validated_and_used(tmp_path: Path) -> None:
    """Valid settings reach the provider's factory."""
    ws = _open(tmp_path, '[scheduler.inventory]\nplugin = "declared"\ncount = 3\nmemory_mb = 1024\n')
    devices = ws.gpu_inventory.devices()
    assert [d.memory_total_mb for d in devices] == [1024] * 3


def test_secret_is_read_from_the_environment_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret is written as { env = "VAR" }, read from the environment, and never shown."""
    from dataclasses import dataclass

    from forgeml.config import build_settings, settings_to_dict

    @dataclass
    class Webhook:
        """A webhook."""

        token: Secret | None = setting(None, "Token.")

    settings = build_settings(Webhook, {"token": {"env": "FORGEML_TEST_TOKEN"}}, "plugins.toml: [hook]")
    monkeypatch.setenv("FORGEML_TEST_TOKEN", "s3cr3t")
    assert settings.token.get() == "s3cr3t"
    assert "s3cr3t" not in str(settings_to_dict(settings))
    monkeypatch.delenv("FORGEML_TEST_TOKEN")
    with pytest.raises(ConfigError, match="FORGEML_TEST_TOKEN"):
        settings.token.get()
    with pytest.raises(ConfigError, match=r"\{ env = \"VAR\" \}"):
        build_settings(Webhook, {"token": "plain-text"}, "plugins.toml: [hook]")


def test_default_config_is_valid_and_complete(tmp_path: Path) -> None:
    """The documented default parses, validates, and comments every setting it lists."""
    text = default_config_text()
    ws = _open(tmp_path, text)
    assert ws.config.provider("storage.metadata")[0].name == "sqlite"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#") and not line.startswith("plugin ="):
            assert lines[i - 1].startswith("#"), f"setting without a comment: {line}"
