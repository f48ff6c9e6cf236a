"""Fixtures for the tracking tests: a workspace with tracking settings chosen per test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def configure(root: Path, **settings: object) -> None:
    """Rewrite keys of the [tracking] section of a workspace's plugins.toml."""
    path = root / "plugins.toml"
    text = path.read_text()
    head, sep, tail = text.partition("[tracking]\n")
    for key, value in settings.items():
        literal = str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, str) else str(value)
        if isinstance(value, list):
            literal = "[" + ", ".join(f'"{v}"' for v in value) + "]"
        tail, n = re.subn(rf"^{key} = .*$", f"{key} = {literal}", tail, count=1, flags=re.M)
        assert n == 1, f"no {key} in [tracking]"
    path.write_text(head + sep + tail)


def reopen(root: Path) -> object:
    """Open the workspace again (to pick up plugins.toml changes) and make it current."""
    from forgeml.workspace import Workspace, set_current

    ws = Workspace(root)
    set_current(ws)
    return ws


@pytest.fixture
def tracked(workspace: object) -> Iterator[object]:
    """The fresh workspace with system metrics off and a short flush interval."""
    root = workspace.root  # type: ignore[attr-defined]
    configure(root, system_metrics=False, flush_interval_s=0.2)
    ws = reopen(root)
    try:
        yield ws
    finally:
        from forgeml.tracking import active_run

        while (run := active_run()) is not None:
            run.end("KILLED")
        ws.close()  # type: ignore[attr-defined]


@pytest.fixture
def retrack(tracked: object) -> Callable[..., object]:
    """Return a function that sets [tracking] keys (and optionally declares N GPUs), then reopens."""
    root = tracked.root  # type: ignore[attr-defined]

    def apply(declared_gpus: int = 0, **settings: object) -> object:
        if declared_gpus:
            path = root / "plugins.toml"
            text = path.read_text().replace('[scheduler.inventory]\nplugin = "nvml"\n',
                                            f'[scheduler.inventory]\nplugin = "declared"\ncount = {declared_gpus}\n')
            assert "declared" in text
            path.write_text(text)
        configure(root, **settings)
        return reopen(root)

    return apply


@pytest.fixture
def run_python(tracked: object) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a Python snippet in a child process against the workspace; return the finished process."""
    root = tracked.root  # type: ignore[attr-defined]

    def run(code: str, env: dict[str, str] | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "FORGEML_HOME": str(root), **(env or {})}
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env, cwd=root,
                              capture_output=True, text=True, timeout=timeout)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    return run
