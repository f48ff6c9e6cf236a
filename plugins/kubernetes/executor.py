"""The Kubernetes executor: create a Job or PyTorchJob, map its state, stream pod logs, delete on cancel."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from forgeml.contracts import ExecutionStatus, Executor, HealthCheck, LaunchRequest
from forgeml.errors import ConfigError, RemoteError, ValidationError
from forgeml.plugins.kubernetes.manifests import (
    PYTORCHJOB_GROUP,
    PYTORCHJOB_PLURAL,
    PYTORCHJOB_VERSION,
    render,
    to_model,
)
from forgeml.plugins.kubernetes.settings import KubernetesTargetSettings
from forgeml.plugins.remote.states import (
    CANCELLED,
    FAILED,
    LOST,
    RUNNING,
    k8s_exit_code,
    k8s_job_status,
    k8s_pod_problem,
    pytorchjob_status,
)

SCHEME = "kubernetes"
LOG_PATH_ANNOTATION = "forgeml.dev/log-path"


def make_k8s_handle(namespace: str, kind: str, name: str) -> str:
    """Return ``kubernetes://namespace/Kind/name``."""
    return f"{SCHEME}://{namespace}/{kind}/{name}"


def parse_k8s_handle(handle: str) -> tuple[str, str, str]:
    """Return (namespace, kind, name) from a handle."""
    prefix = f"{SCHEME}://"
    parts = handle[len(prefix):].split("/") if handle.startswith(prefix) else []
    if len(parts) != 3 or parts[1] not in {"Job", "PyTorchJob"} or not all(parts):
        raise ValidationError(f"{handle!r} is not a kubernetes job handle (kubernetes://namespace/Job/name)")
    return parts[0], parts[1], parts[2]


def _pod_selector(kind: str, name: str) -> str:
    if kind == "PyTorchJob":
        return f"training.kubeflow.org/job-name={name},training.kubeflow.org/replica-type=master"
    return f"job-name={name}"


class KubernetesExecutor(Executor):
    """Submits attempts to a cluster through the official client; the image must hold the code."""

    name = "kubernetes"

    def __init__(self, settings: KubernetesTargetSettings, workspace: Any, api_client: Any = None):
        self.settings = settings
        self.workspace = workspace
        self._api_client = api_client
        self._lock = threading.Lock()
        self._cancelled: set[str] = set()

    # ------------------------------------------------------------ client
    def api_client(self) -> Any:
        """Return the ApiClient built from kubeconfig (or the in-cluster service account)."""
        with self._lock:
            if self._api_client is None:
                import os

                from kubernetes import config

                try:
                    if not self.settings.kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
                        config.load_incluster_config()
                        from kubernetes import client

                        self._api_client = client.ApiClient()
                    else:
                        path = str(Path(self.settings.kubeconfig).expanduser()) if self.settings.kubeconfig else None
                        self._api_client = config.new_client_from_config(config_file=path,
                                                                         context=self.settings.context or None)
                except (config.ConfigException, OSError) as e:
                    raise ConfigError(f"cannot load the Kubernetes configuration: {e}; set kubeconfig/context "
                                      f"on the target or KUBECONFIG") from e
            return self._api_client

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, **kwargs)
        except ApiException as e:
            if e.status == 404:
                raise
            raise RemoteError(f"Kubernetes API refused {what}: {e.status} {e.reason}") from e
        except OSError as e:
            raise RemoteError(f"cannot reach the Kubernetes API server ({what}): {e}") from e

    # ------------------------------------------------------------ contract
    def launch(self, request: LaunchRequest) -> str:
        """Render and create the Job (or PyTorchJob); return its handle."""
        from kubernetes import client

        manifest = render(request, self.settings)
        manifest.body["metadata"].setdefault("annotations", {})[LOG_PATH_ANNOTATION] = request.log_path
        api = self.api_client()
        if manifest.kind == "Job":
            self._call(f"creating Job {manifest.name}", client.BatchV1Api(api).create_namespaced_job,
                       manifest.namespace, to_model(manifest.body, "V1Job"))
        else:
            self._call(f"creating PyTorchJob {manifest.name}", client.CustomObjectsApi(api).create_namespaced_custom_object,
                       PYTORCHJOB_GROUP, PYTORCHJOB_VERSION, manifest.namespace, PYTORCHJOB_PLURAL, manifest.body)
        return make_k8s_handle(manifest.namespace, manifest.kind, manifest.name)

    def _read(self, namespace: str, kind: str, name: str) -> Any:
        from kubernetes import client

        api = self.api_client()
        if kind == "Job":
            return self._call(f"reading Job {name}", client.BatchV1Api(api).read_namespaced_job, name, namespace)
        return self._call(f"reading PyTorchJob {name}", client.CustomObjectsApi(api).get_namespaced_custom_object,
                          PYTORCHJOB_GROUP, PYTORCHJOB_VERSION, namespace, PYTORCHJOB_PLURAL, name)

    def _pods(self, namespace: str, kind: str, name: str) -> list[Any]:
        from kubernetes import client

        pods = self._call(f"listing pods of {name}", client.CoreV1Api(self.api_client()).list_namespaced_pod,
                          namespace, label_selector=_pod_selector(kind, name))
        return sorted(pods.items or [], key=lambda p: str(p.metadata.creation_timestamp or ""))

    def poll(self, handle: str) -> ExecutionStatus:
        """Read the object's conditions (and its pod when useful) and copy new log output locally."""
        from kubernetes.client.exceptions import ApiException

        namespace, kind, name = parse_k8s_handle(handle)
        try:
            obj = self._read(namespace, kind, name)
        except ApiException:
            if handle in self._cancelled:
                return ExecutionStatus(CANCELLED, None, "deleted on cancel")
            return ExecutionStatus(LOST, None, f"{kind} {name} is gone (deleted outside forgeml or by its TTL)")
        except RemoteError as e:
            return ExecutionStatus(RUNNING, None, f"API server unreachable, will retry: {e}")
        status = k8s_job_status(obj) if kind == "Job" else pytorchjob_status(obj)
        pods = self._pods(namespace, kind, name) if status.state in {RUNNING, FAILED} else []
        if pods and status.state == RUNNING:
            problem = k8s_pod_problem(pods[-1])
            if problem:
                status = ExecutionStatus(RUNNING, None, f"stuck: {problem}")
        if pods and status.state == FAILED:
            status = ExecutionStatus(FAILED, k8s_exit_code(pods[-1]), status.reason)
        self._copy_log(handle, obj)
        return status

    def _copy_log(self, handle: str, obj: Any) -> None:
        meta = obj.get("metadata", {}) if isinstance(obj, dict) else obj.metadata
        annotations = (meta.get("annotations") if isinstance(meta, dict) else meta.annotations) or {}
        local = annotations.get(LOG_PATH_ANNOTATION)
        if not local:
            return
        path = Path(local)
        path.parent.mkdir(parents=True, exist_ok=True)
        offset = path.stat().st_size if path.exists() else 0
        text, _ = self.logs(handle, offset)
        if text:
            with open(path, "ab") as f:
                f.write(text.encode())

    def cancel(self, handle: str, grace_s: float = 10.0) -> None:
        """Delete the object and its pods (Kubernetes sends TERM, then KILL after the grace period)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        namespace, kind, name = parse_k8s_handle(handle)
        self._cancelled.add(handle)
        api = self.api_client()
        body = client.V1DeleteOptions(propagation_policy="Background", grace_period_seconds=int(grace_s))
        try:
            if kind == "Job":
                self._call(f"deleting Job {name}", client.BatchV1Api(api).delete_namespaced_job, name, namespace,
                           body=body)
            else:
                self._call(f"deleting PyTorchJob {name}", client.CustomObjectsApi(api).delete_namespaced_custom_object,
                           PYTORCHJOB_GROUP, PYTORCHJOB_VERSION, namespace, PYTORCHJOB_PLURAL, name, body=body)
        except ApiException:
            pass  # already gone: nothing left to stop

    def logs(self, handle: str, offset: int = 0) -> tuple[str, int]:
        """Return the (master) pod's log from a byte offset."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        namespace, kind, name = parse_k8s_handle(handle)
        try:
            pods = self._pods(namespace, kind, name)
        except ApiException:
            return "", offset
        if not pods:
            return "", offset
        pod = pods[-1]
        container = "pytorch" if kind == "PyTorchJob" else "job"
        try:
            text = self._call(f"reading logs of {pod.metadata.name}", client.CoreV1Api(self.api_client())
                              .read_namespaced_pod_log, pod.metadata.name, namespace, container=container)
        except ApiException:
            return "", offset  # the container has not started yet
        data = (text or "").encode()[offset:]
        return data.decode(errors="replace"), offset + len(data)

    def describe(self) -> str:
        """Name the namespace and the image."""
        return f"namespace {self.settings.namespace}, image {self.settings.image or '(none)'}"

    def check(self) -> list[HealthCheck]:
        """Reach the API server, find GPU nodes and the namespace."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            api = self.api_client()
            version = self._call("reading the version", client.VersionApi(api).get_code)
        except (ApiException, ConfigError, RemoteError) as e:
            return [HealthCheck("kubernetes api", False, str(e).splitlines()[0])]
        out = [HealthCheck("kubernetes api", True, f"server {version.git_version}")]
        try:
            nodes = self._call("listing nodes", client.CoreV1Api(api).list_node).items or []
            gpus = sum(int((n.status.allocatable or {}).get(self.settings.gpu_resource, 0)) for n in nodes)
            out.append(HealthCheck("gpus", True, f"{gpus} {self.settings.gpu_resource} on {len(nodes)} node(s)"))
        except (ApiException, RemoteError) as e:
            out.append(HealthCheck("gpus", False, f"cannot list nodes: {e}"))
        try:
            self._call("reading the namespace", client.CoreV1Api(api).read_namespace, self.settings.namespace)
            out.append(HealthCheck(f"namespace {self.settings.namespace}", True, "exists"))
        except (ApiException, RemoteError) as e:
            out.append(HealthCheck(f"namespace {self.settings.namespace}", False, str(e)))
        out.append(HealthCheck("image", bool(self.settings.image), self.settings.image or "no image set"))
        return out
