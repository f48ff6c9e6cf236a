"""Compute on Kubernetes: batch/v1 Jobs, or Kubeflow PyTorchJobs for multi-node DDP, via the official client."""

from __future__ import annotations

from typing import Any

from forgeml import hookimpl
from forgeml.plugins.kubernetes.settings import KubernetesTargetSettings


def _kubernetes(settings: KubernetesTargetSettings, workspace: Any) -> Any:
    from forgeml.plugins.kubernetes.executor import KubernetesExecutor

    return KubernetesExecutor(settings, workspace)


@hookimpl
def forgeml_register_executors(register):
    """Offer the kubernetes executor."""
    register("kubernetes", _kubernetes, settings=KubernetesTargetSettings,
             description="Jobs / PyTorchJobs on a Kubernetes cluster")


@hookimpl
def forgeml_register_commands(cli):
    """Add `forgeml kubernetes serving` (manifests for `forgeml serve` on a cluster)."""
    from forgeml.plugins.kubernetes.cli import kubernetes_group

    cli.add_command(kubernetes_group)
