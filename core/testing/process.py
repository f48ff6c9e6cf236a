"""What the conformance suites share: opening a provider again, in this process or another one.

A suite proves persistence by opening a second instance of the provider under test and proves that
processes share data by running a step in a fresh Python process. Both need a recipe that opens
the provider, given to the suite as a picklable zero-argument callable (an ``opener``): a
module-level function, a :func:`functools.partial` of one, or a :class:`ProviderOpener`.
"""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_CHILD = """
import pickle, sys
with open(sys.argv[1], "rb") as f:
    fn, args = pickle.load(f)
result = fn(*args)
with open(sys.argv[2], "wb") as f:
    pickle.dump(result, f)
"""

_workspaces: dict[str, Any] = {}


def run_elsewhere(fn: Callable[..., Any], *args: Any, timeout: float = 180.0) -> Any:
    """Run ``fn(*args)`` in a fresh Python process (same sys.path) and return its result.

    ``fn`` and ``args`` travel by pickle, so ``fn`` is a module-level function and the arguments
    are plain values or picklable openers. A failure in the other process fails the calling test
    with the other process's traceback.
    """
    with tempfile.TemporaryDirectory(prefix="forgeml-conformance-") as tmp:
        request, response = Path(tmp) / "request.pickle", Path(tmp) / "response.pickle"
        try:
            request.write_bytes(pickle.dumps((fn, args)))
        except (pickle.PicklingError, AttributeError, TypeError) as e:
            raise AssertionError(f"cannot send {getattr(fn, '__name__', fn)!r} and its arguments to another "
                                 f"process; openers must be picklable (module-level callables): {e}") from e
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        done = subprocess.run([sys.executable, "-c", _CHILD, str(request), str(response)], env=env,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"{getattr(fn, '__name__', fn)} failed in another process "
                                 f"(exit {done.returncode}):\n{done.stderr[-3000:]}")
        return pickle.loads(response.read_bytes())


def call_opened(opener: Callable[[], Any], method: str, *args: Any) -> Any:
    """Open a provider with ``opener``, call one of its methods, close it, and return the result."""
    provider = opener()
    try:
        return getattr(provider, method)(*args)
    finally:
        close(provider)


def close(provider: Any) -> None:
    """Close a provider when it has a ``close`` method."""
    closer = getattr(provider, "close", None)
    if callable(closer):
        closer()


@dataclass(frozen=True)
class ProviderOpener:
    """Opens a registered provider the way a workspace does, from a folder and plugins.toml-style settings.

    ``ProviderOpener(root, "online_stores", "sqlite", {"path": "online.db"})`` builds the provider
    that ``[storage.online] plugin = "sqlite"`` would select in the workspace at ``root``; every
    call opens a new instance over the same data. Picklable, so suites open it in other processes.
    """

    root: str
    layer: str
    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def workspace(self) -> Any:
        """Return the workspace at root, opened once per process."""
        ws = _workspaces.get(self.root)
        if ws is None:
            from forgeml.workspace import Workspace

            folder = Path(self.root)
            folder.mkdir(parents=True, exist_ok=True)
            ws = _workspaces[self.root] = Workspace(folder)
        return ws

    def __call__(self) -> Any:
        """Build a fresh provider instance through its plugin's factory."""
        from forgeml.config import build_settings

        ws = self.workspace()
        provider = ws.plugins.provider(self.layer, self.name)
        where = f"{self.layer} {self.name!r}"
        settings = build_settings(provider.settings, dict(self.settings), where) if provider.settings else None
        return provider.factory(settings, ws)


@functools.cache
def registered(layer: str) -> list[str]:
    """Return the names of every provider the installed plugins register for a layer."""
    from forgeml.plugin_manager import make_plugin_manager

    return sorted(make_plugin_manager(report=lambda _msg: None).providers(layer))
