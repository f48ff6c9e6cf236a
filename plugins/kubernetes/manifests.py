"""Kubernetes manifests from a job's needs: a batch/v1 Job (one pod) or a Kubeflow PyTorchJob (multi-node DDP).

Rendering uses the official client's OpenAPI models, so field names and types are checked by them.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any

from forgeml.contracts import LaunchRequest
from forgeml.errors import ConfigError, ValidationError
from forgeml.plugins.kubernetes.settings import KubernetesTargetSettings
from forgeml.plugins.remote.jobdir import LOCAL_ONLY_ENV, TORCHRUN_MODULE, Needs, needs_of, split_torchrun

PYTORCHJOB_GROUP, PYTORCHJOB_VERSION, PYTORCHJOB_PLURAL = "kubeflow.org", "v1", "pytorchjobs"
MANAGED_BY = {"app.kubernetes.io/managed-by": "forgeml"}


@dataclass(frozen=True)
class Manifest:
    """A rendered object: its kind, name and JSON body ready for the API server."""

    kind: str  # "Job" or "PyTorchJob"
    name: str
    namespace: str
    body: dict[str, Any]


def k8s_name(job_id: str, attempt: int) -> str:
    """Return a DNS-1123 object name for an attempt (lowercase, at most 63 characters)."""
    base = re.sub(r"[^a-z0-9-]+", "-", f"forgeml-{job_id}".lower()).strip("-")
    suffix = f"-a{attempt}"
    return base[: 63 - len(suffix)].rstrip("-") + suffix


def label_value(text: str) -> str:
    """Return text as a valid label value (alphanumerics, '-', '_', '.'; at most 63 characters)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")


def _env(request: LaunchRequest, settings: KubernetesTargetSettings, name: str) -> dict[str, str]:
    import os

    env = {k: str(v) for k, v in request.env.items()
           if k not in LOCAL_ONLY_ENV and (k.startswith("FORGEML_") or k in request.secrets or os.environ.get(k) != v)}
    spec_env = getattr(request.spec, "env", None)
    if isinstance(spec_env, dict):
        env.update({k: str(v) for k, v in spec_env.items()})
    env.update({"FORGEML_HOME": settings.forgeml_home, "FORGEML_JOB_ID": request.job_id,
                "FORGEML_CHECKPOINT_DIR": f"{settings.forgeml_home}/checkpoints/{name}", "PYTHONUNBUFFERED": "1"})
    return env


def pod_volumes(settings: KubernetesTargetSettings) -> tuple[list[Any], list[Any]]:
    """Return the target's volumes and the matching mounts as client models."""
    from kubernetes import client as k

    volumes, mounts = [], []
    for i, spec in enumerate(settings.volumes):
        name, path = spec.get("name"), spec.get("mount_path")
        if not name or not path:
            raise ConfigError(f"kubernetes volumes[{i}] needs name and mount_path, got {spec}")
        sources = [key for key in ("claim", "secret", "config_map", "host_path") if key in spec]
        if len(sources) != 1:
            raise ConfigError(f"kubernetes volumes[{i}] ({name}) needs exactly one of claim, secret, config_map, "
                              f"host_path; got {sources or 'none'}")
        src = sources[0]
        kwargs: dict[str, Any] = {"name": name}
        if src == "claim":
            kwargs["persistent_volume_claim"] = k.V1PersistentVolumeClaimVolumeSource(claim_name=spec["claim"])
        elif src == "secret":
            kwargs["secret"] = k.V1SecretVolumeSource(secret_name=spec["secret"])
        elif src == "config_map":
            kwargs["config_map"] = k.V1ConfigMapVolumeSource(name=spec["config_map"])
        else:
            kwargs["host_path"] = k.V1HostPathVolumeSource(path=spec["host_path"])
        volumes.append(k.V1Volume(**kwargs))
        mounts.append(k.V1VolumeMount(name=name, mount_path=path))
    return volumes, mounts


def _pod_template(argv: list[str], env: dict[str, str], needs: Needs, settings: KubernetesTargetSettings,
                  labels: dict[str, str], container_name: str) -> Any:
    from kubernetes import client as k

    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if needs.gpus:
        limits[settings.gpu_resource] = str(needs.gpus)
    if needs.cpus:
        requests["cpu"] = limits["cpu"] = f"{needs.cpus:g}"
    if needs.memory_mb:
        requests["memory"] = limits["memory"] = f"{needs.memory_mb}Mi"
    if not needs.gpus:
        env = {**env, "CUDA_VISIBLE_DEVICES": ""}
    volumes, mounts = pod_volumes(settings)
    container = k.V1Container(
        name=container_name, image=settings.image, image_pull_policy=settings.image_pull_policy,
        command=argv, working_dir=settings.workdir,
        env=[k.V1EnvVar(name=n, value=v) for n, v in sorted(env.items())],
        env_from=[k.V1EnvFromSource(secret_ref=k.V1SecretEnvSource(name=s)) for s in settings.env_secrets] or None,
        resources=k.V1ResourceRequirements(limits=limits or None, requests=requests or None),
        volume_mounts=mounts or None,
    )
    selector = dict(settings.node_selector)
    if needs.gpu_type:
        selector[settings.gpu_type_label] = needs.gpu_type
    tolerations = [k.V1Toleration(**{key: tol.get(key) for key in ("key", "operator", "value", "effect")})
                   for tol in settings.tolerations] if needs.gpus else []
    pod = k.V1PodSpec(
        containers=[container], restart_policy="Never", node_selector=selector or None,
        tolerations=tolerations or None, volumes=volumes or None,
        service_account_name=settings.service_account or None,
        image_pull_secrets=[k.V1LocalObjectReference(name=s) for s in settings.image_pull_secrets] or None,
    )
    return k.V1PodTemplateSpec(metadata=k.V1ObjectMeta(labels=labels), spec=pod)


def _argv(request: LaunchRequest) -> list[str]:
    """The container command: this interpreter's path means the image's python."""
    argv = list(request.argv)
    if argv and argv[0] == sys.executable:
        argv[0] = "python"
    return argv


def render(request: LaunchRequest, settings: KubernetesTargetSettings) -> Manifest:
    """Render an attempt as a batch/v1 Job, or a PyTorchJob when it spans more than one node."""
    from kubernetes import client as k

    if not settings.image:
        raise ConfigError("a kubernetes target needs image = \"registry/image:tag\" (the image holds your code)")
    if not request.argv:
        raise ValidationError("the job has an empty command; give it a command or a script")
    needs = needs_of(request)
    nodes = needs.nodes if needs.nodes > 1 else max(1, settings.nodes)
    name = k8s_name(request.job_id, request.attempt)
    labels = {**MANAGED_BY, **settings.labels, "forgeml.dev/job-id": label_value(request.job_id),
              "forgeml.dev/attempt": str(request.attempt)}
    env = _env(request, settings, name)
    meta = k.V1ObjectMeta(name=name, namespace=settings.namespace, labels=labels,
                          annotations={"forgeml.dev/job-id": request.job_id})
    api = k.ApiClient()
    if nodes == 1:
        template = _pod_template(_argv(request), env, needs, settings, labels, "job")
        job = k.V1Job(api_version="batch/v1", kind="Job", metadata=meta, spec=k.V1JobSpec(
            template=template, backoff_limit=settings.backoff_limit,
            ttl_seconds_after_finished=settings.ttl_seconds_after_finished,
            active_deadline_seconds=int(needs.timeout_s) if needs.timeout_s else None))
        return Manifest("Job", name, settings.namespace, api.sanitize_for_serialization(job))
    python, script = split_torchrun(_argv(request))
    # the training operator sets PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR/PORT that torchrun reads
    argv = [python, "-m", TORCHRUN_MODULE, *script]
    template = api.sanitize_for_serialization(_pod_template(argv, env, needs, settings, labels, "pytorch"))
    replica = {"restartPolicy": "Never", "template": template}
    run_policy: dict[str, Any] = {"cleanPodPolicy": "None", "backoffLimit": settings.backoff_limit,
                                  "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished}
    if needs.timeout_s:
        run_policy["activeDeadlineSeconds"] = int(needs.timeout_s)
    nproc = getattr(request.spec, "nproc", None) or max(1, needs.gpus)
    body = {
        "apiVersion": f"{PYTORCHJOB_GROUP}/{PYTORCHJOB_VERSION}", "kind": "PyTorchJob",
        "metadata": api.sanitize_for_serialization(meta),
        "spec": {"runPolicy": run_policy, "nprocPerNode": str(nproc), "pytorchReplicaSpecs": {
            "Master": {"replicas": 1, **replica}, "Worker": {"replicas": nodes - 1, **replica}}},
    }
    return Manifest("PyTorchJob", name, settings.namespace, body)


def to_model(body: dict[str, Any], model: str) -> Any:
    """Deserialize a JSON body into a client model (e.g. "V1Job"), as the client does with responses."""
    import json

    from kubernetes import client as k

    return k.ApiClient().deserialize(json.dumps(body), model, "application/json")
