"""The suite leaves the checkout as it found it: the clean-tree plugin fails a run that writes into it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git_checkout(pytester: pytest.Pytester) -> None:
    subprocess.run(["git", "init", "-q", str(pytester.path)], check=True)
    (pytester.path / ".gitignore").write_text("__pycache__/\n.forgeml/\n")


def test_a_test_writing_into_the_checkout_fails_the_run(pytester: pytest.Pytester) -> None:
    """A file created beside the sources, even a git-ignored workspace, fails the session and is named."""
    _git_checkout(pytester)
    pytester.makepyfile(test_writes="""
        from pathlib import Path

        def test_writes(request):
            root = request.config.rootpath
            (root / "attempt-1.log").write_text("epoch 1")
            (root / ".forgeml").mkdir()
            (root / ".forgeml" / "meta.db").write_text("")
    """)
    result = pytester.runpytest("-p", "clean_tree", "-p", "no:textual-snapshot")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*tests left files in the repository*.forgeml/meta.db*attempt-1.log*"])


def test_a_test_writing_under_tmp_path_passes(pytester: pytest.Pytester) -> None:
    """Files a test writes under its tmp_path are not the checkout's business."""
    _git_checkout(pytester)
    pytester.makepyfile(test_tmp="""
        def test_tmp(tmp_path):
            (tmp_path / "attempt-1.log").write_text("epoch 1")
    """)
    result = pytester.runpytest("-p", "clean_tree", "-p", "no:textual-snapshot")
    assert result.ret == pytest.ExitCode.OK
