"""Kubernetes: manifests checked against the client's OpenAPI models, states against API-shaped responses.

No Kubernetes API server can run on this machine. The responses in tests/remote/data/ are written in
the exact shape the API server returns (batch/v1 Job, v1 Pod, kubeflow.org/v1 PyTorchJob); the
executor tests talk to a small fake of the API server's HTTP endpoints, through the real client.
Nothing here has been exercised against a real cluster.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from forgeml.contracts import LaunchRequest
from forgeml.errors import ConfigError, ValidationError
from forgeml.plugins.kubernetes.executor import KubernetesExecutor, parse_k8s_handle
from forgeml.plugins.kubernetes.manifests import k8s_name, render, to_model
from forgeml.plugins.kubernetes.settings import KubernetesTargetSettings
from forgeml.plugins.remote.states import k8s_exit_code, k8s_job_status, k8s_pod_problem, pytorchjob_status

DATA = Path(__file__).parent / "data"


def recorded(name: str) -> dict:
    """One API-shaped response from tests/remote/data."""
    return json.loads((DATA / name).read_text())


def _request(spec, job_id="job-7", env=None, log_path="attempt-1.log"):
    return LaunchRequest(job_id, 1, spec.argv(sys.executable), dict(env or {}), "/w", log_path, spec=spec)


@pytest.fixture
def k8s_settings() -> KubernetesTargetSettings:
    """A target with every optional piece set, so rendering covers all of them."""
    return KubernetesTargetSettings(
        image="registry.example/train:1.4", namespace="ml", service_account="trainer",
        image_pull_secrets=["regcred"], env_secrets=["wandb"], node_selector={"pool": "gpu"},
        volumes=[{"name": "data", "mount_path": "/data", "claim": "datasets"},
                 {"name": "home", "mount_path": "/forgeml", "host_path": "/mnt/forgeml"}],
        labels={"team": "vision"},
    )


# ------------------------------------------------------------------ rendering
def test_single_pod_job_renders_and_round_trips_through_v1job(k8s_settings):
    from kubernetes import client

    from forgeml.jobs import JobSpec

    spec = JobSpec(script="train.py", framework="pytorch", gpus=2, gpu_type="NVIDIA-A100-SXM4-80GB", cpus=8,
                   memory_mb=64000, timeout_s=7200, env={"SEED": "1"})
    manifest = render(_request(spec, env={"FORGEML_RUN_ID": "r9", "PATH": "/local/bin"}), k8s_settings)
    assert manifest.kind == "Job" and manifest.name == "forgeml-job-7-a1"
    job = to_model(manifest.body, "V1Job")
    assert isinstance(job, client.V1Job)
    assert client.ApiClient().sanitize_for_serialization(job) == manifest.body
    pod = job.spec.template.spec
    (container,) = pod.containers
    assert container.command[:3] == ["python", "-m", "torch.distributed.run"]
    assert container.resources.limits == {"nvidia.com/gpu": "2", "cpu": "8", "memory": "64000Mi"}
    assert pod.node_selector == {"pool": "gpu", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert pod.tolerations[0].key == "nvidia.com/gpu" and pod.restart_policy == "Never"
    assert pod.service_account_name == "trainer" and pod.image_pull_secrets[0].name == "regcred"
    assert container.env_from[0].secret_ref.name == "wandb"
    assert {v.name: v.persistent_volume_claim or v.host_path for v in pod.volumes}["data"].claim_name == "datasets"
    env = {e.name: e.value for e in container.env}
    assert env["FORGEML_RUN_ID"] == "r9" and env["SEED"] == "1" and env["FORGEML_HOME"] == "/forgeml"
    assert "PATH" not in env
    assert job.spec.active_deadline_seconds == 7200 and job.spec.backoff_limit == 0
    assert job.metadata.labels["team"] == "vision"


def test_the_workspaces_secrets_reach_the_pod_and_the_rest_of_this_environment_does_not(k8s_settings, monkeypatch):
    """A secret plugins.toml reads (named in LaunchRequest.secrets) is forwarded though it is this process's too."""
    from forgeml.jobs import JobSpec

    monkeypatch.setenv("LAB_TOKEN", "t0k")
    monkeypatch.setenv("UNRELATED_LOCAL", "stays")
    request = _request(JobSpec(command=["python", "prep.py"]), env={"LAB_TOKEN": "t0k", "UNRELATED_LOCAL": "stays"})
    request.secrets = ("LAB_TOKEN",)
    job = to_model(render(request, k8s_settings).body, "V1Job")
    env = {e.name: e.value for e in job.spec.template.spec.containers[0].env}
    assert env["LAB_TOKEN"] == "t0k" and "UNRELATED_LOCAL" not in env


def test_cpu_job_has_no_gpu_resource_and_no_gpu_toleration(k8s_settings):
    from forgeml.jobs import JobSpec

    job = to_model(render(_request(JobSpec(command=["python", "prep.py"])), k8s_settings).body, "V1Job")
    pod = job.spec.template.spec
    assert pod.containers[0].resources.limits is None and pod.tolerations is None
    assert {e.name: e.value for e in pod.containers[0].env}["CUDA_VISIBLE_DEVICES"] == ""


def test_multi_node_job_renders_a_pytorchjob_whose_replicas_are_valid_pod_templates(k8s_settings):
    from kubernetes import client

    from forgeml.jobs import JobSpec

    spec = JobSpec(script="train.py", args=["--epochs", "3"], gpus=4, framework="pytorch")
    k8s_settings.nodes = 3
    manifest = render(_request(spec, job_id="job-8"), k8s_settings)
    assert manifest.kind == "PyTorchJob" and manifest.body["apiVersion"] == "kubeflow.org/v1"
    replicas = manifest.body["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] == 2
    assert manifest.body["spec"]["nprocPerNode"] == "4"
    template = to_model(replicas["Worker"]["template"], "V1PodTemplateSpec")
    assert isinstance(template, client.V1PodTemplateSpec)
    (container,) = template.spec.containers
    assert container.name == "pytorch"  # the training operator looks for this container name
    assert container.command == ["python", "-m", "torch.distributed.run", "train.py", "--epochs", "3"]
    assert container.resources.limits == {"nvidia.com/gpu": "4"}


def test_bad_settings_are_clear_errors(k8s_settings):
    from forgeml.jobs import JobSpec

    spec = JobSpec(script="t.py")
    with pytest.raises(ConfigError, match="needs image"):
        render(_request(spec), KubernetesTargetSettings())
    k8s_settings.volumes = [{"name": "x", "mount_path": "/x", "claim": "a", "secret": "b"}]
    with pytest.raises(ConfigError, match="exactly one of"):
        render(_request(spec), k8s_settings)
    with pytest.raises(ValidationError, match="kubernetes job handle"):
        parse_k8s_handle("kubernetes://ml/Deployment/x")
    assert len(k8s_name("J" * 100, 12)) <= 63 and k8s_name("Job_A", 1) == "forgeml-job-a-a1"


# ------------------------------------------------------------------ states from API-shaped responses
@pytest.mark.parametrize(("name", "state", "reason"), [
    ("job_created.json", "running", "queued: no pod yet"),
    ("job_pod_starting.json", "running", "queued: pod starting"),
    ("job_running.json", "running", "running"),
    ("job_complete.json", "succeeded", "CompletionsReached"),
    ("job_failed.json", "failed", "BackoffLimitExceeded"),
])
def test_job_states_from_responses_as_json_and_as_models(name, state, reason):
    body = recorded(name)
    for obj in (body, to_model(body, "V1Job")):
        status = k8s_job_status(obj)
        assert status.state == state and status.reason.startswith(reason)
    assert k8s_job_status(body, cancelled=True).state == "cancelled"


def test_pod_problems_and_exit_codes():
    stuck = recorded("pod_image_pull_backoff.json")
    for obj in (stuck, to_model(stuck, "V1Pod")):
        assert k8s_pod_problem(obj).startswith("ImagePullBackOff")
    assert k8s_pod_problem(recorded("pod_running.json")) == ""
    assert k8s_exit_code(to_model(recorded("pod_failed.json"), "V1Pod")) == 3
    assert k8s_exit_code(recorded("pod_running.json")) is None


@pytest.mark.parametrize(("name", "state"), [
    ("pytorchjob_created.json", "running"), ("pytorchjob_running.json", "running"),
    ("pytorchjob_succeeded.json", "succeeded"), ("pytorchjob_failed.json", "failed"),
])
def test_pytorchjob_states(name, state):
    assert pytorchjob_status(recorded(name)).state == state


# ------------------------------------------------------------------ the executor against a fake API server
class FakeApiServer:
    """A fake of the Kubernetes API server's HTTP endpoints the executor uses, replaying API-shaped bodies."""

    def __init__(self):
        self.jobs: dict[str, dict] = {}
        self.statuses: list[str] = []
        self.pod = "pod_running.json"
        self.deleted: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, code: int, body, ctype="application/json"):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.jobs[body["metadata"]["name"]] = body
                self._send(201, body)

            def do_GET(self):
                url = urlsplit(self.path)
                parts = url.path.strip("/").split("/")
                if url.path.rstrip("/") == "/api/v1/nodes":
                    node = {"metadata": {"name": "gpu-node-3"}, "status": {"allocatable": {"nvidia.com/gpu": "8"}}}
                    return self._send(200, {"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": [node]})
                if url.path.rstrip("/") == "/api/v1/namespaces/ml":
                    return self._send(200, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}})
                if url.path.rstrip("/") == "/version":
                    return self._send(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.2",
                                            "gitCommit": "a57b6f7709f6c2722b92f07b8b4c48210a51fc40",
                                            "gitTreeState": "clean", "buildDate": "2025-06-17T18:34:18Z",
                                            "goVersion": "go1.24.4", "compiler": "gc", "platform": "linux/amd64"})
                if url.path.endswith("/log"):
                    return self._send(200, "epoch 1\nepoch 2\n", "text/plain")
                if parts[-1] == "pods":
                    selector = parse_qs(url.query).get("labelSelector", [""])[0]
                    items = [recorded(fake.pod)] if fake.jobs and "job-name=" in selector else []
                    return self._send(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
                name = parts[-1]
                if name not in fake.jobs:
                    return self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                            "reason": "NotFound", "code": 404})
                body = dict(fake.jobs[name])
                if fake.statuses:
                    body["status"] = recorded(fake.statuses.pop(0))["status"]
                return self._send(200, body)

            def do_DELETE(self):
                name = urlsplit(self.path).path.rstrip("/").split("/")[-1]
                fake.deleted.append(name)
                fake.jobs.pop(name, None)
                self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """The fake's base URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_api():
    """A running fake API server (stands in for a cluster: none can run here)."""
    fake = FakeApiServer()
    try:
        yield fake
    finally:
        fake.close()


def _executor(fake, settings, workspace=None):
    from kubernetes import client

    return KubernetesExecutor(settings, workspace, api_client=client.ApiClient(client.Configuration(host=fake.url)))


def test_executor_submits_maps_states_streams_logs_and_deletes_on_cancel(fake_api, k8s_settings, tmp_path):
    from forgeml.jobs import JobSpec

    executor = _executor(fake_api, k8s_settings)
    req = _request(JobSpec(script="train.py", gpus=1))
    req.log_path = str(tmp_path / "attempt-1.log")
    handle = executor.launch(req)
    assert handle == "kubernetes://ml/Job/forgeml-job-7-a1"
    created = fake_api.jobs["forgeml-job-7-a1"]
    assert created["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert created["metadata"]["annotations"]["forgeml.dev/log-path"] == req.log_path
    fake_api.statuses = ["job_running.json", "job_complete.json"]
    assert executor.poll(handle).state == "running"
    assert executor.poll(handle).state == "succeeded"
    assert (tmp_path / "attempt-1.log").read_text() == "epoch 1\nepoch 2\n"
    text, offset = executor.logs(handle, 8)
    assert text == "epoch 2\n" and offset == 16
    executor.cancel(handle)
    assert fake_api.deleted == ["forgeml-job-7-a1"]
    assert executor.poll(handle).state == "cancelled"


def test_executor_reports_stuck_pods_failed_exit_codes_and_vanished_jobs(fake_api, k8s_settings, tmp_path):
    from forgeml.jobs import JobSpec

    executor = _executor(fake_api, k8s_settings)
    # a finished pod's log is copied home to the request's log path: keep it in tmp_path
    handle = executor.launch(_request(JobSpec(script="train.py"), log_path=str(tmp_path / "attempt-1.log")))
    fake_api.pod, fake_api.statuses = "pod_image_pull_backoff.json", ["job_pod_starting.json"]
    status = executor.poll(handle)
    assert status.state == "running" and "ImagePullBackOff" in status.reason
    fake_api.pod, fake_api.statuses = "pod_failed.json", ["job_failed.json"]
    status = executor.poll(handle)
    assert (status.state, status.exit_code) == ("failed", 3)
    fake_api.jobs.clear()
    assert executor.poll(handle).state == "lost"


def test_check_against_the_fake_api_server(fake_api, k8s_settings):
    checks = {c.name: c for c in _executor(fake_api, k8s_settings).check()}
    assert checks["kubernetes api"].ok and "v1.33.2" in checks["kubernetes api"].detail
    assert checks["image"].ok and checks["namespace ml"].ok
    assert checks["gpus"].detail == "8 nvidia.com/gpu on 1 node(s)"
