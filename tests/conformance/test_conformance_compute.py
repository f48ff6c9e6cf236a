"""Every registered executor and GPU inventory runs its layer's conformance suite.

The Kubernetes executor is left out here: no Kubernetes API server can run on this machine, and a
fake one cannot run the attempt's code; tests/remote/test_remote_kubernetes.py tests it against
API-shaped responses instead. SSH and Slurm run against the real sshd and Slurm on loopback.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from forgeml.testing import ExecutorSuite, GpuInventorySuite, PlacementPolicySuite
from forgeml.testing.base import each_provider
from forgeml.testing.process import ProviderOpener, registered


def _skip_kubernetes(request: pytest.FixtureRequest) -> dict[str, Any]:
    pytest.skip("no Kubernetes API server can run here (see tests/remote/test_remote_kubernetes.py)")


def _ssh(request: pytest.FixtureRequest) -> dict[str, Any]:
    server = request.getfixturevalue("sshd_server")
    root = request.getfixturevalue("tmp_path_factory").mktemp("ssh-root")
    return {"hosts": [f"{server.host}:{server.port}"], "user": server.user, "key_files": [server.key_filename],
            "use_agent": False, "known_hosts": server.known_hosts, "remote_root": str(root),
            "python": sys.executable, "sync_interval_s": 30.0}


def _slurm(request: pytest.FixtureRequest) -> dict[str, Any]:
    cluster = request.getfixturevalue("slurm_cluster")
    root = request.getfixturevalue("tmp_path_factory").mktemp("slurm-root")
    return {"env": dict(cluster.env), "remote_root": str(root), "python": sys.executable, "sync_interval_s": 30.0,
            "partition": cluster.partition}


def _ray(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"address": request.getfixturevalue("ray_dashboard")}


class TestExecutors(ExecutorSuite):
    """Every executor: local on this machine; ssh, slurm and ray (a head and a worker node) on loopback services."""

    open_executor = each_provider("executors", {"kubernetes": _skip_kubernetes, "ssh": _ssh, "slurm": _slurm,
                                                "ray": _ray})


class TestGpuInventories(GpuInventorySuite):
    """Every GPU inventory: nvml reads this machine's GPUs (none is fine), declared lists two."""

    @pytest.fixture(params=registered("gpu_inventories"))
    def inventory(self, request: pytest.FixtureRequest, tmp_path: Any) -> Any:
        settings = {"count": 2} if request.param == "declared" else {}
        return ProviderOpener(str(tmp_path / "ws"), "gpu_inventories", request.param, settings)()


class TestPlacementPolicies(PlacementPolicySuite):
    """Every placement policy, built with its documented default settings."""

    @pytest.fixture(params=registered("placement_policies"))
    def policy(self, request: pytest.FixtureRequest, tmp_path: Any) -> Any:
        return ProviderOpener(str(tmp_path / "ws"), "placement_policies", request.param)()
