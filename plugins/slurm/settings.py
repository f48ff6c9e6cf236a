"""Settings of a Slurm compute target ([compute.targets.NAME] with plugin = "slurm")."""

from __future__ import annotations

from dataclasses import dataclass

from forgeml.config import setting
from forgeml.plugins.remote.settings import SshConnectionSettings


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
    srun_torchrun: bool = setting(False, "Launch DDP/FSDP jobs through srun + torchrun with the c10d rendezvous on one "
                                  "node too, as multi-node jobs are (the same launch on one node and on many).")
