"""A pytest plugin that fails the run when tests left files in the repository.

Tests write only under their tmp dirs. The plugin lists the checkout's untracked and ignored paths
(build and cache folders aside) when the session starts and again when it ends; any path that is new
at the end fails the session and is named, so a stray log or workspace never reaches a commit.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

# what Python, pip, pytest and editors make on their own: never a test's doing
EXPECTED = ("__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", ".egg-info", ".venv", "build/", "dist/",
            ".import_linter_cache", ".coverage", "snapshot_report.html", ".mypy_cache")


def stray_paths(repo: Path) -> set[str] | None:
    """Return the untracked and ignored paths of the checkout (None outside a git checkout)."""
    try:
        proc = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--ignored", "--untracked-files=all"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    paths = {line[3:] for line in proc.stdout.splitlines() if line[:2] in {"??", "!!"}}
    return {p for p in paths if not any(part in p for part in EXPECTED)}


def pytest_sessionstart(session: pytest.Session) -> None:
    """Record the paths that were already there (only in the controlling process under xdist)."""
    if not hasattr(session.config, "workerinput"):
        session.config.stash[_BEFORE] = stray_paths(session.config.rootpath)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session when a test created files inside the repository."""
    before = session.config.stash.get(_BEFORE, None)
    if before is None or hasattr(session.config, "workerinput"):
        return
    after = stray_paths(session.config.rootpath) or set()
    new = sorted(after - before)
    if new:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "tests left files in the repository (write under tmp_path instead): " + ", ".join(new[:20])
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_BEFORE = pytest.StashKey[set[str] | None]()
