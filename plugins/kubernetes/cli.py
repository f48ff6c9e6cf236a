"""`forgeml kubernetes`: what the kubernetes plugin adds to the CLI (rendering `forgeml serve` for a cluster)."""

from __future__ import annotations

import click


@click.group("kubernetes")
def kubernetes_group() -> None:
    """Kubernetes manifests for this workspace's kubernetes targets."""


@kubernetes_group.command("serving")
@click.argument("model_uris", nargs=-1)
@click.option("--target", default=None, help="The [compute.targets.NAME] kubernetes target (its image, namespace, "
                                              "volumes, secrets); needed when there are several.")
@click.option("--name", default="forgeml-serve", show_default=True, help="Name of the Deployment, Service and HPA.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Container port (default from [serving]).")
@click.option("--cpus", type=float, default=1.0, show_default=True, help="CPU each pod requests.")
@click.option("--memory-mb", type=click.IntRange(1), default=None, help="Memory each pod requests and is limited to.")
@click.option("--gpus", type=click.IntRange(0), default=0, show_default=True, help="GPUs each pod gets.")
def serving_cmd(model_uris: tuple[str, ...], target: str | None, name: str, port: int | None, cpus: float,
                memory_mb: int | None, gpus: int) -> None:
    """Print a Deployment, Service and HorizontalPodAutoscaler serving MODEL_URIs (pipe to `kubectl apply -f -`).

    With no MODEL_URI the pods serve the [serving.endpoints.NAME] tables of their plugins.toml. The HPA is
    rendered when [serving.autoscale] is enabled, with its targets and cool-downs.
    """
    from forgeml.plugins.kubernetes.serving import ServingPods, serving_manifests, to_yaml
    from forgeml.workspace import current

    pods = ServingPods(name=name, port=port, cpus=cpus, memory_mb=memory_mb, gpus=gpus)
    click.echo(to_yaml(serving_manifests(current(), list(model_uris), target, pods)), nl=False)
