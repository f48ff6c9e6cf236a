"""Compute on a Slurm cluster: sbatch scripts from the job spec, submitted here or on a login node over SSH."""

from __future__ import annotations

from typing import Any

from forgeml import hookimpl
from forgeml.plugins.slurm.settings import SlurmTargetSettings


def _slurm(settings: SlurmTargetSettings, workspace: Any) -> Any:
    from forgeml.plugins.slurm.executor import SlurmExecutor

    return SlurmExecutor(settings, workspace)


@hookimpl
def forgeml_register_executors(register):
    """Offer the slurm executor."""
    register("slurm", _slurm, settings=SlurmTargetSettings, description="batch jobs on a Slurm cluster (sbatch)")
