"""Pytest fixtures for forgeml and its plugin authors (loaded through the ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from forgeml.testing import _SUITES

# The suites are imported after this plugin loads, so pytest rewrites their asserts: a failing rule
# then shows the values it compared (expected and got), as in the author's own tests.
pytest.register_assert_rewrite(*sorted(set(_SUITES.values())))


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A fresh workspace in a temporary folder, made current for the module-level API."""
    from forgeml.workspace import Workspace, set_current

    root = tmp_path / "ws"
    ws = Workspace.init(root)
    monkeypatch.setenv("FORGEML_HOME", str(root))
    monkeypatch.chdir(root)
    set_current(ws)
    try:
        yield ws
    finally:
        set_current(None)
        ws.close()


@pytest.fixture
def make_plugin_manager() -> Callable[..., Any]:
    """A factory building a PluginHost from the installed plugins plus throwaway ones.

    ``make_plugin_manager(plugin, ("name", other), disabled=["nvml"], local=[...], base_dir=...)``:
    each extra plugin is a module, class or object with ``@hookimpl`` functions, optionally
    given as a ``(name, plugin)`` pair; unnamed ones are named after their ``__name__``. Messages
    about plugins that failed to load are collected in the returned host's ``load_reports``.
    """
    from forgeml.plugin_manager import make_plugin_manager as build

    def factory(
        *plugins: Any,
        disabled: Iterable[str] = (),
        local: Iterable[str] = (),
        base_dir: Path | None = None,
    ) -> Any:
        extra = []
        for i, plugin in enumerate(plugins):
            if isinstance(plugin, tuple):
                extra.append(plugin)
            else:
                name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{i}"
                extra.append((name, plugin))
        reports: list[str] = []
        host = build(disabled=disabled, local=local, base_dir=base_dir, extra=extra, report=reports.append)
        host.load_reports = reports
        return host

    return factory


@pytest.fixture
def configure(workspace: object) -> Iterator[Callable[[str], object]]:
    """Write plugins.toml into the test workspace and reopen it (made current) with that configuration."""
    from forgeml.workspace import Workspace, set_current

    opened: list[Workspace] = []

    def apply(text: str) -> Workspace:
        (workspace.root / "plugins.toml").write_text(text)  # type: ignore[attr-defined]
        ws = Workspace(workspace.root)  # type: ignore[attr-defined]
        set_current(ws)
        opened.append(ws)
        return ws

    yield apply
    for ws in opened:
        ws.close()
