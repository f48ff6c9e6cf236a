"""The forgeml command line, run as a user runs it: in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from forgeml.workspace import default_config_text


def forgeml(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``forgeml ARGS`` in a new process outside any FORGEML_HOME."""
    base = {k: v for k, v in os.environ.items() if k != "FORGEML_HOME"}
    return subprocess.run([sys.executable, "-m", "forgeml", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**base, **(env or {})})


def test_help_lists_the_kernel_commands(tmp_path: Path) -> None:
    """``forgeml --help`` works outside a workspace and lists init, doctor, plugins and config."""
    proc = forgeml("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for command in ("init", "doctor", "plugins", "config"):
        assert f"\n  {command} " in proc.stdout


def test_init_then_plugins_list(tmp_path: Path) -> None:
    """init creates the workspace with the documented config; plugins list --json describes each plugin."""
    proc = forgeml("init", "demo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Created workspace" in proc.stdout
    assert (tmp_path / "demo" / "plugins.toml").read_text() == default_config_text()
    assert (tmp_path / "demo" / ".forgeml" / "metadata.db").exists()
    again = forgeml("init", "demo", cwd=tmp_path)
    assert again.returncode == 0 and "Reopened workspace" in again.stdout

    listed = forgeml("plugins", "list", "--json", cwd=tmp_path / "demo")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert set(rows["embedded"]) == {"name", "version", "origin", "enabled", "hooks"}
    assert rows["embedded"]["origin"] == "built-in" and rows["embedded"]["enabled"] == "yes"
    assert "register_metadata_stores" in rows["embedded"]["hooks"]
    assert "register_gpu_inventories" in rows["nvml"]["hooks"]


def test_plugins_list_shows_disabled_plugins(tmp_path: Path) -> None:
    """A plugin disabled in plugins.toml is listed as not enabled."""
    (tmp_path / ".forgeml").mkdir()
    (tmp_path / "plugins.toml").write_text('[plugins]\ndisabled = ["kubernetes"]\n')
    proc = forgeml("plugins", "list", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["kubernetes"]["enabled"] == "no" and rows["nvml"]["enabled"] == "yes"


def _has_nvidia_gpu() -> bool:
    from forgeml.plugins.nvml import NvmlInventory

    return bool(NvmlInventory().devices())


def test_doctor_in_a_new_workspace(tmp_path: Path) -> None:
    """doctor checks Python, torch, GPUs, the workspace, both stores and every plugin, and passes."""
    forgeml("init", cwd=tmp_path)
    proc = forgeml("doctor", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert {"python", "torch", "workspace", "metadata store", "artifact store", "plugin embedded"} <= set(checks)
    assert all(c["ok"] for c in checks.values())
    if _has_nvidia_gpu():
        gpu = checks["gpu 0"]["detail"]
        assert "NVIDIA" in gpu and "MiB free" in gpu and "busy" in gpu
    else:
        assert checks["gpus"]["detail"] == "no NVIDIA GPU found, CPU mode"


def test_doctor_reports_each_gpu() -> None:
    """doctor lists each GPU with its name, memory and utilization.

    The declared inventory stands in for real GPUs, which this machine may not have.
    """
    from forgeml.doctor import gpu_checks
    from forgeml.plugins.nvml import DeclaredInventory, DeclaredSettings

    checks = gpu_checks(DeclaredInventory(DeclaredSettings(count=2, name="Fake A100", memory_mb=40960)))
    assert [(c.name, c.ok, c.detail) for c in checks] == [
        (f"gpu {i}", True, "Fake A100, 40960/40960 MiB free, 0% busy") for i in range(2)
    ]


def test_doctor_outside_a_workspace_fails_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a workspace doctor still runs every check and fails the workspace one with the fix.

    The torch check is replaced by a fixed result: importing torch is not what this test is about.
    """
    from forgeml import doctor
    from forgeml.contracts import HealthCheck

    monkeypatch.delenv("FORGEML_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(doctor, "_torch_check", lambda: [HealthCheck("torch", True, "skipped")])
    checks = {c.name: c for c in doctor.run_checks()}
    assert checks["workspace"].ok is False and "forgeml init" in checks["workspace"].detail
    assert checks["plugin embedded"].ok
    assert "gpus" in checks or "gpu 0" in checks


@pytest.mark.parametrize("config, expected", [
    ('[storage.metadata]\nplugin = "sqlit"\n', "did you mean 'sqlite'"),
    ('[storage.metadata]\npaht = "x"\n', "did you mean 'path'"),
    ("[storage\n", "not valid TOML"),
])
def test_a_broken_plugins_toml_is_one_line_and_exit_2(tmp_path: Path, config: str, expected: str) -> None:
    """A ForgeError prints one line on stderr, no traceback, and exits 2."""
    (tmp_path / ".forgeml").mkdir()
    (tmp_path / "plugins.toml").write_text(config)
    proc = forgeml("plugins", "list", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("forgeml: error: ") and expected in lines[0]
    assert "plugins.toml" in lines[0]


def test_forgeml_home_that_is_not_a_workspace_is_one_line(tmp_path: Path) -> None:
    """config show with a wrong FORGEML_HOME says how to fix it, in one line, exit 2."""
    proc = forgeml("config", "show", cwd=tmp_path, env={"FORGEML_HOME": str(tmp_path / "nowhere")})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "forgeml init" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    """A misspelt command is a click usage error (exit 2), not a traceback."""
    proc = forgeml("doctr", cwd=tmp_path)
    assert proc.returncode == 2 and "No such command 'doctr'" in proc.stderr and "Traceback" not in proc.stderr


def test_plugin_contributed_command(tmp_path: Path) -> None:
    """A local plugin adds a command with forgeml_register_commands; it runs and shows in help."""
    (tmp_path / ".forgeml").mkdir()
    (tmp_path / "plugins.toml").write_text('[plugins]\nlocal = ["greet.py"]\n')
    (tmp_path / "greet.py").write_text(textwrap.dedent('''
        import click
        from forgeml import hookimpl


        @hookimpl
        def forgeml_register_commands(cli):
            @cli.command("greet")
            @click.argument("who")
            def greet(who):
                """Greet someone."""
                click.echo(f"hello {who}")
    '''))
    proc = forgeml("greet", "world", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello world\n"
    assert "greet" in forgeml("--help", cwd=tmp_path).stdout


def test_config_default_prints_the_documented_config(tmp_path: Path) -> None:
    """``forgeml config default`` prints what init writes."""
    proc = forgeml("config", "default", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == default_config_text()


def test_a_command_module_that_fails_to_import_does_not_break_help(tmp_path: Path) -> None:
    """A built-in command whose module is broken is listed as unavailable and fails in one line."""
    code = textwrap.dedent("""
        import sys
        from forgeml import cli
        cli.cli.lazy["broken"] = "forgeml.cli.no_such_module:cmd"
        cli.main(sys.argv[1:])
    """)
    env = {k: v for k, v in os.environ.items() if k != "FORGEML_HOME"}
    helped = subprocess.run([sys.executable, "-c", code, "--help"], cwd=tmp_path, capture_output=True, text=True,
                            env=env, timeout=60)
    assert helped.returncode == 0, helped.stderr
    assert "broken" in helped.stdout and "(unavailable)" in helped.stdout
    ran = subprocess.run([sys.executable, "-c", code, "broken"], cwd=tmp_path, capture_output=True, text=True,
                         env=env, timeout=60)
    assert ran.returncode == 2 and "Traceback" not in ran.stderr
    assert "command 'broken' is unavailable" in ran.stderr
