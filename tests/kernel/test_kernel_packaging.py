"""Packaging: every package folder is in pyproject, a plain wheel works, and import forgeml stays light."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"core": "forgeml", "storage": "forgeml.storage", "plugins": "forgeml.plugins", "tui": "forgeml.tui"}
HEAVY = ["torch", "duckdb", "lancedb", "paramiko", "textual", "pandas", "numpy", "pyarrow"]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _package_folders() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder)
            if "__pycache__" in rel.parts:
                continue
            found[".".join([package, *rel.parts])] = init.parent
    return found


def test_every_package_folder_is_listed_in_pyproject() -> None:
    """Each folder with __init__.py under core/, storage/, plugins/, tui/ is a listed package."""
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    missing = sorted(set(_package_folders()) - listed)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_every_listed_package_has_its_folder() -> None:
    """No package in pyproject points at a folder that does not exist."""
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    stale = sorted(listed - set(_package_folders()))
    assert not stale, f"listed in pyproject.toml but no folder with __init__.py: {stale}"


def test_folders_map_into_one_namespace() -> None:
    """package-dir maps core/ to forgeml and the other folders under it, nothing at top level."""
    mapping = _pyproject()["tool"]["setuptools"]["package-dir"]
    assert mapping == {package: folder for folder, package in FOLDERS.items()}


def _run_python(code: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_forgeml_loads_no_heavy_library() -> None:
    """``import forgeml`` in a fresh process imports none of the heavy engines."""
    out = _run_python(
        "import json, sys, forgeml\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    assert json.loads(out) == []


def test_cli_help_loads_no_heavy_library(tmp_path: Path) -> None:
    """``forgeml --help`` (which loads every plugin for its commands) imports no heavy engine."""
    out = _run_python(
        "import json, sys\n"
        "from forgeml.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))",
        cwd=tmp_path,
    )
    assert json.loads(out.strip().splitlines()[-1]) == []


@pytest.mark.slow
def test_a_plain_wheel_installs_and_runs(tmp_path: Path) -> None:
    """A wheel built from a copy of the tree installs and runs ``import forgeml`` and ``forgeml --help``."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(src)],
        check=True, capture_output=True, timeout=180,
    )
    (wheel,) = wheels.glob("forgeml-*.whl")
    target = tmp_path / "target"
    # a pure-Python wheel installs by unpacking it; this is what `pip install --target` does, minus pip's start-up
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    entry_points = next(target.glob("forgeml-*.dist-info")).joinpath("entry_points.txt").read_text()
    assert "forgeml = forgeml.cli:main" in entry_points and "embedded = forgeml.plugins.embedded" in entry_points
    top_level = {p.name for p in target.iterdir()}
    assert "forgeml" in top_level and not top_level & set(FOLDERS), top_level
    assert (target / "forgeml" / "py.typed").exists()
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("FORGEML_HOME", None)
    out = _run_python(
        "import forgeml, forgeml.storage.sqlite, forgeml.plugins.embedded, forgeml.tui\n"
        "print(forgeml.__file__)",
        env=env, cwd=tmp_path,
    )
    assert out.strip().startswith(str(target))
    proc = subprocess.run([sys.executable, "-c", "from forgeml.cli import main; main()", "--help"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "init" in proc.stdout and "doctor" in proc.stdout
