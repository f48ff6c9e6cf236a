"""The plugin manager: entry points, local plugins, disabling, failures and the typed facade."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from forgeml import hookimpl
from forgeml.errors import ConfigError, PluginError
from forgeml.workspace import Workspace

BUILT_IN = {"embedded", "nvml", "local", "features", "redis", "runtimes", "gates", "monitors", "notifiers",
            "pipelines", "ssh", "slurm", "kubernetes"}


def _infos(host) -> dict:
    return {i.name: i for i in host.infos}


def test_built_in_plugins_load_through_entry_points(make_plugin_manager) -> None:
    """Every built-in plugin is found in the ``forgeml`` entry point group, enabled, with its hooks."""
    infos = _infos(make_plugin_manager())
    assert BUILT_IN <= set(infos)
    assert all(infos[name].origin == "built-in" and infos[name].version for name in BUILT_IN)
    assert infos["embedded"].enabled
    assert {"forgeml_register_metadata_stores", "forgeml_register_artifact_stores"} <= set(infos["embedded"].hooks)


def test_built_in_providers_are_registered(make_plugin_manager) -> None:
    """The embedded and nvml plugins offer the default stores and GPU inventories."""
    host = make_plugin_manager()
    assert "sqlite" in host.providers("metadata_stores")
    assert "fsspec" in host.providers("artifact_stores")
    assert {"nvml", "declared"} <= set(host.providers("gpu_inventories"))
    assert host.provider("artifact_stores", "fsspec").plugin == "embedded"


def test_unknown_provider_name_suggests_the_closest(make_plugin_manager) -> None:
    """Asking for a provider that does not exist lists the choices with a did-you-mean."""
    with pytest.raises(ConfigError, match=r"unknown metadata store 'sqlit' \(did you mean 'sqlite'\?\)"):
        make_plugin_manager().provider("metadata_stores", "sqlit")


def test_unknown_layer_is_an_error(make_plugin_manager) -> None:
    """A misspelt layer name fails with the list of layers."""
    with pytest.raises(Exception, match="did you mean 'artifact_stores'"):
        make_plugin_manager().providers("artifact_store")


def test_disabled_plugin_is_blocked(make_plugin_manager) -> None:
    """A disabled plugin is listed as disabled and contributes nothing."""
    host = make_plugin_manager(disabled=["nvml"])
    assert _infos(host)["nvml"].enabled is False
    assert "nvml" not in host.providers("gpu_inventories")
    assert host.pm.get_plugin("nvml") is None


def test_unknown_disabled_name_suggests_the_closest(make_plugin_manager) -> None:
    """Disabling a plugin that is not installed is a one-line error with a did-you-mean."""
    with pytest.raises(ConfigError) as err:
        make_plugin_manager(disabled=["nvm"])
    message = str(err.value)
    assert "plugins.disabled" in message and "'nvm'" in message and "did you mean 'nvml'" in message
    assert "\n" not in message


def test_essential_plugin_cannot_be_disabled(make_plugin_manager) -> None:
    """The embedded stores are essential: disabling them is refused."""
    with pytest.raises(ConfigError, match="embedded.*cannot be disabled"):
        make_plugin_manager(disabled=["embedded"])


def test_throwaway_plugin_receives_events_through_the_facade(make_plugin_manager) -> None:
    """Event hooks reach every plugin with keyword arguments; services call them via PluginHost."""
    seen = []

    class Listener:
        @hookimpl
        def forgeml_on_job_state_changed(self, job, old_state, new_state, workspace):
            seen.append((job, old_state, new_state))

        @hookimpl
        def forgeml_on_model_stage_changed(self, model_version, new_stage, reason):
            seen.append((model_version, new_stage, reason))

    host = make_plugin_manager(("listener", Listener()))
    host.on_job_state_changed("job-1", None, "PENDING", workspace=None)
    host.on_model_stage_changed("m@1", "STAGING", "PRODUCTION", "better", workspace=None)
    assert seen == [("job-1", None, "PENDING"), ("m@1", "PRODUCTION", "better")]
    assert _infos(host)["listener"].hooks == ["forgeml_on_job_state_changed", "forgeml_on_model_stage_changed"]


def test_classify_failure_takes_the_first_answer(make_plugin_manager) -> None:
    """A decision hook returns the first non-None answer; None lets other plugins decide."""

    class Undecided:
        @hookimpl
        def forgeml_classify_failure(self, log_tail):
            return None

    class OutOfMemory:
        @hookimpl
        def forgeml_classify_failure(self, log_tail):
            return "permanent" if "out of memory" in log_tail else None

    host = make_plugin_manager(("undecided", Undecided()), ("oom", OutOfMemory()))
    assert host.classify_failure(job=None, exit_code=1, log_tail="CUDA out of memory") == "permanent"
    assert host.classify_failure(job=None, exit_code=1, log_tail="segfault") is None


def test_two_plugins_offering_the_same_name_conflict(make_plugin_manager) -> None:
    """Two plugins registering the same provider name is a PluginError naming both."""

    class Copycat:
        @hookimpl
        def forgeml_register_artifact_stores(self, register):
            register("fsspec", lambda settings, workspace: None)

    host = make_plugin_manager(("copycat", Copycat()))
    with pytest.raises(PluginError, match="'embedded' and 'copycat'|'copycat' and 'embedded'"):
        host.providers("artifact_stores")


def test_a_hook_forgeml_does_not_define_is_rejected(make_plugin_manager) -> None:
    """A typo in a hook name is caught when the manager is built."""

    class Typo:
        @hookimpl
        def forgeml_register_artifact_store(self, register):
            pass

    with pytest.raises(PluginError, match="forgeml_register_artifact_store"):
        make_plugin_manager(("typo", Typo()))


LOCAL_PLUGIN = '''
from dataclasses import dataclass

from forgeml import hookimpl
from forgeml.config import setting


@dataclass
class GreetingSettings:
    """Greeting settings."""

    word: str = setting("hello", "The word.")


@hookimpl
def forgeml_register_settings(register):
    register("greeting", GreetingSettings)


class Inventory:
    label = "{name}-inventory"

    def devices(self):
        return []


@hookimpl
def forgeml_register_gpu_inventories(register):
    register("{name}", lambda settings, workspace: Inventory())
'''


def _workspace_with(tmp_path: Path, config: str, files: dict[str, str]) -> Path:
    root = tmp_path / "ws"
    (root / ".forgeml").mkdir(parents=True)
    (root / "plugins.toml").write_text(textwrap.dedent(config))
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_local_plugin_by_file_path(tmp_path: Path) -> None:
    """A .py file beside plugins.toml loads as a local plugin and its providers and settings work."""
    root = _workspace_with(tmp_path, """
        [plugins]
        local = ["my_plugins.py"]
        [scheduler.inventory]
        plugin = "mine"
        [greeting]
        word = "hi"
    """, {"my_plugins.py": LOCAL_PLUGIN.replace("{name}", "mine")})
    ws = Workspace(root)
    info = _infos(ws.plugins)["my_plugins"]
    assert info.origin == "local" and info.enabled
    assert ws.gpu_inventory.label == "mine-inventory"
    assert ws.config.section("greeting").word == "hi"


def test_local_plugin_by_dotted_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dotted module path in plugins.local is imported from sys.path."""
    pkg = tmp_path / "site" / "team_plugins"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "inventory.py").write_text(LOCAL_PLUGIN.replace("{name}", "team"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    root = _workspace_with(tmp_path, """
        [plugins]
        local = ["team_plugins.inventory"]
        [scheduler.inventory]
        plugin = "team"
    """, {})
    ws = Workspace(root)
    assert _infos(ws.plugins)["team_plugins.inventory"].origin == "local"
    assert ws.gpu_inventory.label == "team-inventory"


def test_local_plugin_that_fails_to_import_is_reported_and_skipped(tmp_path: Path, make_plugin_manager) -> None:
    """A broken local plugin is reported with its error; the other plugins keep working."""
    (tmp_path / "broken.py").write_text("import no_such_module_for_forgeml\n")
    host = make_plugin_manager(local=["broken.py"], base_dir=tmp_path)
    info = _infos(host)["broken.py"]
    assert not info.enabled and "ModuleNotFoundError" in info.error
    assert any("broken.py" in r and "skipped" in r for r in host.load_reports)
    assert "sqlite" in host.providers("metadata_stores")


def test_missing_local_plugin_file_is_a_config_error(tmp_path: Path, make_plugin_manager) -> None:
    """A local plugin path that does not exist is a configuration error naming the path."""
    with pytest.raises(ConfigError, match="nope.py"):
        make_plugin_manager(local=["nope.py"], base_dir=tmp_path)


def test_disabled_local_plugin_is_not_registered(tmp_path: Path, make_plugin_manager) -> None:
    """A local plugin can be disabled by its name like any other."""
    (tmp_path / "extra.py").write_text(LOCAL_PLUGIN.replace("{name}", "extra"))
    host = make_plugin_manager(local=["extra.py"], base_dir=tmp_path, disabled=["extra"])
    assert _infos(host)["extra"].enabled is False
    assert "extra" not in host.providers("gpu_inventories")


@dataclass
class _Point:
    x: int = 0


def test_make_plugin_manager_fixture_names_unnamed_plugins(make_plugin_manager) -> None:
    """Modules and classes passed without a name are registered under their __name__."""

    class Namer:
        __name__ = "namer"

        @hookimpl
        def forgeml_register_settings(self, register):
            register("point", _Point)

    host = make_plugin_manager(Namer())
    assert "namer" in _infos(host)
    assert host.settings_sections()["point"] == (_Point, "namer")
