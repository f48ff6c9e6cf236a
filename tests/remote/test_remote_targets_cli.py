"""`forgeml targets ls|check` against the real loopback sshd and Slurm, configured through plugins.toml."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from forgeml.cli import cli


def _toml_list(values) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


@pytest.fixture
def targets_workspace(workspace, sshd_server, slurm_cluster, remote_root):
    """The test workspace with an ssh, a slurm and a broken ssh target in plugins.toml."""
    conf = workspace.root / "plugins.toml"
    conf.write_text(conf.read_text() + f"""
[compute.targets.lab]
plugin = "ssh"
hosts = ["{sshd_server.host}:{sshd_server.port}"]
user = "{sshd_server.user}"
key_files = {_toml_list([sshd_server.key_filename])}
use_agent = false
known_hosts = "{sshd_server.known_hosts}"
remote_root = "{remote_root}"
python = "{sys.executable}"

[compute.targets.cluster]
plugin = "slurm"
env = {{ SLURM_CONF = "{slurm_cluster.env['SLURM_CONF']}" }}
remote_root = "{remote_root}"
python = "{sys.executable}"

[compute.targets.nowhere]
plugin = "ssh"
hosts = ["127.0.0.1:1"]
use_agent = false
strict_host_keys = false
connect_timeout_s = 3.0
""")
    return workspace


@pytest.mark.service
def test_targets_ls_lists_every_target(targets_workspace):
    result = CliRunner().invoke(cli, ["targets", "ls", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["lab"]["plugin"] == "ssh" and rows["cluster"]["plugin"] == "slurm"
    assert rows["local"]["where"] == "this machine"


@pytest.mark.service
@pytest.mark.parametrize("target", ["lab", "cluster"])
def test_targets_check_passes_against_the_real_services(targets_workspace, target):
    result = CliRunner().invoke(cli, ["targets", "check", target, "--json"])
    assert result.exit_code == 0, result.output
    checks = json.loads(result.output)
    assert checks and all(c["ok"] for c in checks)


@pytest.mark.service
def test_targets_check_fails_with_exit_1_for_an_unreachable_host(targets_workspace):
    result = CliRunner().invoke(cli, ["targets", "check", "nowhere", "--json"])
    assert result.exit_code == 1
    (check,) = json.loads(result.output)
    assert not check["ok"] and "cannot reach" in check["detail"]


def test_unknown_target_and_bad_settings_are_config_errors(workspace):
    from forgeml.errors import ConfigError, NotFoundError
    from forgeml.workspace import Workspace

    with pytest.raises(NotFoundError, match="unknown compute target 'lav'"):
        workspace.executor("lav")
    conf = workspace.root / "plugins.toml"
    conf.write_text(conf.read_text() + '\n[compute.targets.lab]\nplugin = "ssh"\nhots = ["a"]\n')
    with pytest.raises(ConfigError, match="did you mean 'hosts'"):
        Workspace(workspace.root)
