"""`forgeml serve` on Kubernetes: a Deployment, a Service and an autoscaling/v2 HorizontalPodAutoscaler.

Each pod runs one `forgeml serve` worker; on Kubernetes the HPA adds and removes pods where `--workers
auto` adds and removes processes, with the same targets ([serving.autoscale]): requests in flight per
pod, the p99 of recent answers, GPU utilization, and the two cool-downs as stabilization windows.
The HPA reads those as Pods metrics, so the cluster needs a custom-metrics adapter serving them from
the pods' /metrics (docs/serving.md gives the Prometheus Adapter rules). Rendering goes through the
official client's models, so field names and types are checked by them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgeml.errors import ConfigError, ValidationError
from forgeml.plugins.kubernetes.manifests import MANAGED_BY, Manifest, label_value, pod_volumes
from forgeml.plugins.kubernetes.settings import KubernetesTargetSettings

# the names the HPA asks the custom-metrics API for (the adapter maps them from /metrics)
IN_FLIGHT_METRIC = "forgeml_serving_in_flight"
P99_METRIC = "forgeml_serving_request_latency_p99_seconds"
GPU_METRIC = "DCGM_FI_DEV_GPU_UTIL"  # NVIDIA's dcgm-exporter, per GPU of the pod


@dataclass(frozen=True)
class ServingPods:
    """What each serving pod asks for: its port and its resources."""

    name: str = "forgeml-serve"
    port: int | None = None  # None: [serving] port
    cpus: float = 1.0
    memory_mb: int | None = None
    gpus: int = 0


def quantity(value: float) -> str:
    """Render a number as a Kubernetes quantity: whole numbers as is, others in thousandths ("250m")."""
    if float(value).is_integer():
        return str(int(value))
    return f"{round(value * 1000)}m"


def _dns_name(name: str) -> str:
    import re

    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name):
        raise ValidationError(f"{name!r} is not a valid Kubernetes service name (lowercase letters, digits and '-', "
                              "starting with a letter, at most 63 characters)")
    return name


def _container(uris: list[str], pods: ServingPods, target: KubernetesTargetSettings) -> Any:
    from kubernetes import client as k

    limits: dict[str, str] = {}
    requests: dict[str, str] = {"cpu": quantity(pods.cpus)}
    if pods.memory_mb:
        requests["memory"] = limits["memory"] = f"{pods.memory_mb}Mi"
    if pods.gpus:
        limits[target.gpu_resource] = str(pods.gpus)
    env = {"FORGEML_HOME": target.forgeml_home, "PYTHONUNBUFFERED": "1"}
    if not pods.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ""
    _, mounts = pod_volumes(target)

    def probe(path: str, period: int) -> Any:
        return k.V1Probe(http_get=k.V1HTTPGetAction(path=path, port="http"), period_seconds=period,
                         failure_threshold=3, timeout_seconds=2)

    return k.V1Container(
        name="serve", image=target.image, image_pull_policy=target.image_pull_policy, working_dir=target.workdir,
        # one worker per pod: the HPA scales pods, and a pod's worker count would hide load from it
        command=["forgeml", "serve", *uris, "--host", "0.0.0.0", "--port", str(pods.port), "--workers", "1"],
        ports=[k.V1ContainerPort(name="http", container_port=pods.port)],
        env=[k.V1EnvVar(name=n, value=v) for n, v in sorted(env.items())],
        env_from=[k.V1EnvFromSource(secret_ref=k.V1SecretEnvSource(name=s)) for s in target.env_secrets] or None,
        resources=k.V1ResourceRequirements(limits=limits or None, requests=requests),
        readiness_probe=probe("/readyz", 5), liveness_probe=probe("/healthz", 10),
        volume_mounts=mounts or None,
    )


def _metrics(autoscale: Any) -> list[Any]:
    from kubernetes import client as k

    def pods_metric(name: str, average: float) -> Any:
        return k.V2MetricSpec(type="Pods", pods=k.V2PodsMetricSource(
            metric=k.V2MetricIdentifier(name=name),
            target=k.V2MetricTarget(type="AverageValue", average_value=quantity(average))))

    metrics = [pods_metric(IN_FLIGHT_METRIC, autoscale.target_in_flight)]
    if autoscale.target_p99_ms > 0:
        metrics.append(pods_metric(P99_METRIC, autoscale.target_p99_ms / 1000.0))
    if autoscale.gpu_util_pct > 0:
        metrics.append(pods_metric(GPU_METRIC, autoscale.gpu_util_pct))
    return metrics


def _behavior(autoscale: Any) -> Any:
    """One pod at a time, at most once per cool-down, as the local autoscaler adds and removes workers."""
    from kubernetes import client as k

    def rules(cooldown: float) -> Any:
        window = min(3600, max(0, round(cooldown)))
        return k.V2HPAScalingRules(stabilization_window_seconds=window, select_policy="Max", policies=[
            k.V2HPAScalingPolicy(type="Pods", value=1, period_seconds=min(1800, max(1, round(cooldown))))])

    return k.V2HorizontalPodAutoscalerBehavior(scale_up=rules(autoscale.up_cooldown_s),
                                               scale_down=rules(autoscale.down_cooldown_s))


def render_serving(uris: list[str], serving: Any, target: KubernetesTargetSettings,
                   pods: ServingPods | None = None) -> list[Manifest]:
    """Render the Deployment, Service and (with [serving.autoscale] enabled) HorizontalPodAutoscaler."""
    from dataclasses import replace

    from kubernetes import client as k

    pods = replace(pods or ServingPods(), port=(pods.port if pods else None) or serving.port)
    if not target.image:
        raise ConfigError("a kubernetes target needs image = \"registry/image:tag\" (the image holds forgeml "
                          "and your models' dependencies)")
    if pods.cpus <= 0 or pods.gpus < 0 or (pods.memory_mb is not None and pods.memory_mb <= 0):
        raise ValidationError(f"serving pods need cpus > 0, gpus >= 0 and memory > 0; got cpus={pods.cpus:g}, "
                              f"gpus={pods.gpus}, memory_mb={pods.memory_mb}")
    name = _dns_name(pods.name)
    scale = serving.autoscale
    if scale.enabled and scale.max_workers < scale.min_workers:
        raise ConfigError(f"[serving.autoscale] max_workers ({scale.max_workers}) is below min_workers "
                          f"({scale.min_workers})")
    selector = {"app.kubernetes.io/name": label_value(name), "app.kubernetes.io/component": "serving"}
    labels = {**MANAGED_BY, **target.labels, **selector}
    meta = k.V1ObjectMeta(name=name, namespace=target.namespace, labels=labels)
    volumes, _ = pod_volumes(target)
    node_selector = dict(target.node_selector)
    tolerations = [k.V1Toleration(**{key: tol.get(key) for key in ("key", "operator", "value", "effect")})
                   for tol in target.tolerations] if pods.gpus else []
    template = k.V1PodTemplateSpec(
        metadata=k.V1ObjectMeta(labels=labels, annotations={
            "prometheus.io/scrape": "true", "prometheus.io/port": str(pods.port), "prometheus.io/path": "/metrics"}),
        spec=k.V1PodSpec(
            containers=[_container(uris, pods, target)], volumes=volumes or None,
            node_selector=node_selector or None, tolerations=tolerations or None,
            service_account_name=target.service_account or None,
            image_pull_secrets=[k.V1LocalObjectReference(name=s) for s in target.image_pull_secrets] or None))
    deployment = k.V1Deployment(api_version="apps/v1", kind="Deployment", metadata=meta, spec=k.V1DeploymentSpec(
        replicas=scale.min_workers if scale.enabled else serving.workers,
        selector=k.V1LabelSelector(match_labels=selector), template=template,
        strategy=k.V1DeploymentStrategy(type="RollingUpdate", rolling_update=k.V1RollingUpdateDeployment(
            max_unavailable=0, max_surge=1))))  # a new version starts before an old pod stops
    service = k.V1Service(api_version="v1", kind="Service", metadata=meta, spec=k.V1ServiceSpec(
        selector=selector, ports=[k.V1ServicePort(name="http", port=80, target_port="http", protocol="TCP")]))
    api = k.ApiClient()
    out = [Manifest("Deployment", name, target.namespace, api.sanitize_for_serialization(deployment)),
           Manifest("Service", name, target.namespace, api.sanitize_for_serialization(service))]
    if scale.enabled:
        hpa = k.V2HorizontalPodAutoscaler(
            api_version="autoscaling/v2", kind="HorizontalPodAutoscaler", metadata=meta,
            spec=k.V2HorizontalPodAutoscalerSpec(
                scale_target_ref=k.V2CrossVersionObjectReference(api_version="apps/v1", kind="Deployment", name=name),
                min_replicas=scale.min_workers, max_replicas=scale.max_workers, metrics=_metrics(scale),
                behavior=_behavior(scale)))
        out.append(Manifest("HorizontalPodAutoscaler", name, target.namespace, api.sanitize_for_serialization(hpa)))
    return out


def serving_manifests(ws: Any, uris: list[str], target_name: str | None, pods: ServingPods) -> list[Manifest]:
    """Render the workspace's serving for one of its kubernetes targets, after checking each model URI resolves."""
    from forgeml.serving.config import serving_settings
    from forgeml.serving.source import RegistrySource

    kube = {name: settings for name, (provider, settings) in ws.config.targets().items()
            if provider.name == "kubernetes"}
    if target_name is None and len(kube) != 1:
        raise ConfigError("name the kubernetes target with --target: " + (
            f"this workspace has {', '.join(sorted(kube))}" if kube else
            "this workspace has none; add [compute.targets.NAME] with plugin = \"kubernetes\" and its image"))
    name = target_name if target_name is not None else next(iter(kube))
    if name not in kube:
        raise ConfigError(f"{name!r} is not a kubernetes target of this workspace; its kubernetes targets: "
                          f"{', '.join(sorted(kube)) or 'none'}")
    source = RegistrySource(ws)
    for uri in uris:
        source.version_of(uri)  # an unknown model fails here, in one line, not in every pod
    serving = serving_settings(ws)
    return render_serving(list(uris), serving, kube[name], pods)


def to_yaml(manifests: list[Manifest]) -> str:
    """Render manifests as one multi-document YAML stream, for `kubectl apply -f -`."""
    import yaml

    return yaml.safe_dump_all([m.body for m in manifests], sort_keys=False)
