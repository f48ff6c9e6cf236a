"""Settings of the remote compute targets ([compute.targets.NAME] tables in plugins.toml)."""

from __future__ import annotations

from dataclasses import dataclass

from forgeml.config import setting


@dataclass
class SshConnectionSettings:
    """How to log in over SSH; private keys are read from the paths given, never copied anywhere."""

    port: int = setting(22, "SSH port used for hosts that do not say host:port.")
    user: str = setting("", "Login name (empty: your local user name).")
    key_files: list[str] = setting([], "Private key files to try, by path (empty: keys from the ssh-agent).")
    use_agent: bool = setting(True, "Also try keys held by the ssh-agent (SSH_AUTH_SOCK).")
    known_hosts: str = setting("~/.ssh/known_hosts", "known_hosts file used to check each host's key.")
    strict_host_keys: bool = setting(True, "Refuse hosts whose key is not in known_hosts (false: trust on first use).")
    connect_timeout_s: float = setting(10.0, "Seconds to wait for a connection and login.")
    remote_root: str = setting("~/.forgeml-remote", "Folder on the remote side for code, job folders and the remote workspace.")
    python: str = setting("python3", "Python on the remote side that has forgeml installed.")
    code: str = setting("auto", "Code snapshot: auto (git when in a repository), git, archive (whole folder) or none.")
    exclude: list[str] = setting([], "Extra glob patterns left out of code snapshots, e.g. [\"data/*\"].")
    sync_interval_s: float = setting(15.0, "Seconds between incremental bring-backs of metrics and artifacts while a job runs.")
    env: dict[str, str] = setting({}, "Environment for jobs and forgeml's own commands there, e.g. { PATH = \"/opt/bin:/usr/bin:/bin\" }.")


@dataclass
class SshTargetSettings(SshConnectionSettings):
    """An SSH target: one or more hosts that run jobs detached under the login user's shell."""

    hosts: list[str] = setting(["localhost"], "Hosts as [user@]host[:port]; a job goes to the first with the GPUs it needs.")
    login_shell: bool = setting(True, "Start jobs through the user's login shell ($SHELL -l) so its profile sets PATH.")


@dataclass
class SlurmTargetSettings(SshConnectionSettings):
    """A Slurm cluster: sbatch locally, or over SSH on a login node; remote_root must be on a shared filesystem."""

    login_host: str = setting("", "Login node as [user@]host[:port]; empty runs sbatch/squeue/scancel on this machine.")
    partition: str = setting("", "Partition (sbatch --partition); empty uses the cluster's default.")
    account: str = setting("", "Account to charge (sbatch --account).")
    qos: str = setting("", "Quality of service (sbatch --qos).")
    gpu_gres: str = setting("gpu", "Generic resource name of GPUs (--gres=NAME[:type]:N).")
    time_limit: str = setting("", "Default --time when the job sets no timeout, e.g. \"04:00:00\".")
    sbatch_args: list[str] = setting([], "Extra #SBATCH lines, e.g. [\"--constraint=a100\"].")
    setup: list[str] = setting([], "Shell lines run before the job, e.g. [\"module load cuda\"].")
    nodes: int = setting(1, "Default node count; more than 1 runs srun + torchrun with the rendezvous on the first node.")


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
