"""Settings of a Kubernetes compute target ([compute.targets.NAME] with plugin = "kubernetes")."""

from __future__ import annotations

from dataclasses import dataclass

from forgeml.config import setting


@dataclass
class KubernetesTargetSettings:
    """A Kubernetes cluster: batch/v1 Jobs, or Kubeflow PyTorchJobs for multi-node DDP."""

    image: str = setting("", "Container image with your code's dependencies and forgeml.")
    namespace: str = setting("default", "Namespace jobs are created in.")
    kubeconfig: str = setting("", "kubeconfig path (empty: $KUBECONFIG, ~/.kube/config, or in-cluster).")
    context: str = setting("", "kubeconfig context (empty: the current one).")
    service_account: str = setting("", "Service account of the pods.")
    image_pull_secrets: list[str] = setting([], "Secrets used to pull the image.")
    image_pull_policy: str = setting("IfNotPresent", "imagePullPolicy of the containers.")
    gpu_resource: str = setting("nvidia.com/gpu", "Extended resource name requested per GPU.")
    gpu_type_label: str = setting("nvidia.com/gpu.product", "Node label matched against the job's GPU type.")
    node_selector: dict[str, str] = setting({}, "Extra node selector labels.")
    tolerations: list[dict[str, str]] = setting(
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "Tolerations added to GPU pods (tables with key, operator, value, effect).",
    )
    env_secrets: list[str] = setting([], "Secrets whose keys become environment variables (envFrom).")
    volumes: list[dict[str, str]] = setting(
        [], "Volumes: tables with name, mount_path and one of claim (a PVC), secret, config_map or host_path."
    )
    workdir: str = setting("/workspace", "Working folder inside the container.")
    forgeml_home: str = setting("/forgeml", "FORGEML_HOME inside the container (mount a volume there to keep runs).")
    backoff_limit: int = setting(0, "Pod retries inside Kubernetes (forgeml retries jobs itself).")
    ttl_seconds_after_finished: int = setting(86400, "Seconds before Kubernetes deletes a finished Job.")
    labels: dict[str, str] = setting({}, "Extra labels on Jobs and pods.")
    nodes: int = setting(1, "Default node count; more than 1 renders a Kubeflow PyTorchJob.")
