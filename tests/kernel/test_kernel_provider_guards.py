"""A provider factory that raises or returns something else than its layer's contract is reported naming the plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from forgeml.errors import PluginError

FAULTY_PLUGIN = '''
from forgeml import hookimpl


class HalfStore:
    """Has write and read but not read_rows or delete_view."""

    def write(self, view, rows, key_columns, timestamp_field):
        return 0

    def read(self, view, keys, features):
        return None


def _explodes(settings, workspace):
    raise RuntimeError("connection pool exhausted")


@hookimpl
def forgeml_register_online_stores(register):
    register("explodes", _explodes)
    register("half", lambda settings, workspace: HalfStore())
'''


def _open(tmp_path: Path, plugin: str) -> Any:
    from forgeml.workspace import Workspace

    root = tmp_path / "ws"
    root.mkdir()
    (root / "faulty.py").write_text(FAULTY_PLUGIN)
    (root / "plugins.toml").write_text(f'[plugins]\nlocal = ["faulty.py"]\n\n[storage.online]\nplugin = "{plugin}"\n')
    return Workspace(root)


def test_a_factory_that_raises_is_named(tmp_path: Path) -> None:
    """The error names the layer, the provider and the plugin, and keeps the plugin's message."""
    ws = _open(tmp_path, "explodes")
    with pytest.raises(PluginError, match=r"online store 'explodes' \(plugin 'faulty'\) could not start: "
                                          r"RuntimeError: connection pool exhausted"):
        ws.online_store  # noqa: B018 - opening the store is the act under test


def test_a_factory_returning_the_wrong_type_is_named(tmp_path: Path) -> None:
    """A provider missing contract methods is refused before core calls them, listing what is missing."""
    ws = _open(tmp_path, "half")
    with pytest.raises(PluginError, match=r"online store 'half' \(plugin 'faulty'\): its factory returned HalfStore, "
                                          r"which is not a OnlineStore \(missing delete_view, read_rows\)"):
        ws.online_store  # noqa: B018 - opening the store is the act under test
