"""`forgeml serve` rendered for Kubernetes: Deployment, Service and an autoscaling/v2 HPA from [serving.autoscale].

No Kubernetes API server runs here. Each rendered manifest is checked against the Kubernetes OpenAPI
schema (kubernetes-validate, strict: an unknown field fails) and read back into the official client's
models; nothing here has been applied to a real cluster.
"""

from __future__ import annotations

import re

import pytest
import yaml
from click.testing import CliRunner

from forgeml.errors import ConfigError, ValidationError

kv = pytest.importorskip("kubernetes_validate")

K8S_VERSION = "1.30"
TARGET = '\n[compute.targets.cluster]\nplugin = "kubernetes"\nimage = "registry.example/serve:2"\nnamespace = "ml"\n'
AUTOSCALE = """
[serving.autoscale]
enabled = true
min_workers = 2
max_workers = 6
target_in_flight = 3.5
target_p99_ms = 250
gpu_util_pct = 80
up_cooldown_s = 10
down_cooldown_s = 120
"""


def _with(workspace, text: str, **serving: int):
    """Reopen the workspace with text appended to plugins.toml and [serving] keys changed."""
    from forgeml.workspace import Workspace, set_current

    config = (workspace.root / "plugins.toml").read_text()
    for key, value in serving.items():
        config = re.sub(rf"(\[serving\]\n(?:.*\n)*?){key} = .*\n", rf"\g<1>{key} = {value}\n", config, count=1)
    (workspace.root / "plugins.toml").write_text(config + text)
    ws = Workspace(workspace.root)
    set_current(ws)
    return ws


def _render(*args: str) -> list[dict]:
    from forgeml.cli import cli

    res = CliRunner().invoke(cli, ["kubernetes", "serving", *args])
    assert res.exit_code == 0, res.output
    return list(yaml.safe_load_all(res.output))


def test_serving_renders_a_deployment_service_and_hpa_valid_against_the_openapi_schema(sklearn_model, workspace):
    """The HPA takes min/max, every target and both cool-downs from [serving.autoscale]; all three validate."""
    from forgeml.plugins.kubernetes.manifests import to_model

    _with(workspace, TARGET + AUTOSCALE)
    docs = _render("clf@production", "--gpus", "1", "--memory-mb", "2048", "--cpus", "1.5")
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    for doc in docs:
        kv.validate(doc, K8S_VERSION, strict=True)
    deployment, service, hpa = docs
    for doc, model in zip(docs, ("V1Deployment", "V1Service", "V2HorizontalPodAutoscaler"), strict=True):
        assert to_model(doc, model).metadata.name == "forgeml-serve"
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["image"] == "registry.example/serve:2" and deployment["metadata"]["namespace"] == "ml"
    assert container["command"][:3] == ["forgeml", "serve", "clf@production"]
    assert container["command"][-2:] == ["--workers", "1"]  # the HPA scales pods, one worker each
    assert container["resources"] == {"limits": {"memory": "2048Mi", "nvidia.com/gpu": "1"},
                                      "requests": {"cpu": "1500m", "memory": "2048Mi"}}
    assert pod["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert deployment["spec"]["replicas"] == 2
    labels = pod["metadata"]["labels"]
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())
    assert all(labels[k] == v for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "forgeml-serve"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 6)
    targets = {m["pods"]["metric"]["name"]: m["pods"]["target"]["averageValue"] for m in spec["metrics"]}
    assert targets == {"forgeml_serving_in_flight": "3500m", "forgeml_serving_request_latency_p99_seconds": "250m",
                       "DCGM_FI_DEV_GPU_UTIL": "80"}
    assert spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 10
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 120
    assert spec["behavior"]["scaleDown"]["policies"] == [{"periodSeconds": 120, "type": "Pods", "value": 1}]


def test_without_autoscale_there_is_no_hpa_and_the_replicas_are_the_workers(workspace):
    """[serving] workers pods, no HPA; with no model URIs the pods serve the configured endpoints."""
    _with(workspace, TARGET, workers=3, port=9100)
    docs = _render()
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    for doc in docs:
        kv.validate(doc, K8S_VERSION, strict=True)
    [container] = docs[0]["spec"]["template"]["spec"]["containers"]
    assert docs[0]["spec"]["replicas"] == 3 and container["ports"] == [{"containerPort": 9100, "name": "http"}]
    assert container["command"] == ["forgeml", "serve", "--host", "0.0.0.0", "--port", "9100", "--workers", "1"]
    assert "nvidia.com/gpu" not in str(container["resources"]) and "tolerations" not in docs[0]["spec"]["template"]["spec"]


def test_the_schema_check_catches_a_broken_manifest(workspace):
    """The validator used above does fail on a wrong type and on an unknown field."""
    from forgeml.plugins.kubernetes.serving import ServingPods, serving_manifests

    ws = _with(workspace, TARGET + AUTOSCALE)
    hpa = serving_manifests(ws, [], None, ServingPods())[-1].body
    with pytest.raises(kv.ValidationError):
        kv.validate({**hpa, "spec": {**hpa["spec"], "minReplicas": "two"}}, K8S_VERSION, strict=True)
    with pytest.raises(kv.ValidationError):
        kv.validate({**hpa, "spec": {**hpa["spec"], "targetCPU": 50}}, K8S_VERSION, strict=True)


def test_bad_input_is_one_clear_line(sklearn_model, workspace, capsys):
    """No target, an unknown one, no image, a bad name, max below min and an unknown model each fail in one line."""
    from forgeml.cli import main
    from forgeml.plugins.kubernetes.serving import ServingPods, serving_manifests

    with pytest.raises(ConfigError, match="has none; add"):
        serving_manifests(workspace, [], None, ServingPods())
    ws = _with(workspace, '\n[compute.targets.bare]\nplugin = "kubernetes"\n')
    with pytest.raises(ConfigError, match="needs image"):
        serving_manifests(ws, [], "bare", ServingPods())
    with pytest.raises(ConfigError, match="'nope' is not a kubernetes target"):
        serving_manifests(ws, [], "nope", ServingPods())
    ws = _with(workspace, TARGET + "\n[serving.autoscale]\nenabled = true\nmin_workers = 5\nmax_workers = 2\n")
    with pytest.raises(ConfigError, match="name the kubernetes target"):
        serving_manifests(ws, [], None, ServingPods())
    with pytest.raises(ConfigError, match=re.escape("max_workers (2) is below min_workers (5)")):
        serving_manifests(ws, [], "cluster", ServingPods())
    with pytest.raises(ValidationError, match="not a valid Kubernetes service name"):
        serving_manifests(ws, [], "cluster", ServingPods(name="Serve_Me"))
    with pytest.raises(SystemExit) as exited:
        main(["kubernetes", "serving", "clx@production", "--target", "cluster"])
    err = capsys.readouterr().err
    assert exited.value.code != 0 and "did you mean 'clf'" in err and len(err.strip().splitlines()) == 1
