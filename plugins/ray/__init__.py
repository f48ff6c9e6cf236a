"""Compute on a Ray cluster through its Job Submission API: ``[compute.targets.NAME] plugin = "ray"``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgeml import hookimpl
from forgeml.config import setting


@dataclass
class RayTargetSettings:
    """A Ray cluster reached through its dashboard's Job Submission API (``pip install 'forgeml[ray]'``)."""

    address: str = setting("http://127.0.0.1:8265", "The cluster's dashboard URL (Job Submission API), as for "
                                                    "`ray job submit --address`.")
    python: str = setting("python", "Interpreter on the cluster's nodes that runs script jobs (with forgeml "
                                    "installed when jobs log runs).")
    upload_workdir: bool = setting(True, "Upload the job's working directory as the runtime env's working_dir "
                                         "(false: the nodes see it at the same path, a shared filesystem).")
    excludes: list[str] = setting([".forgeml", ".git", ".venv", "__pycache__", "*.pyc"],
                                  "Paths of the working directory not uploaded (gitignore syntax).")
    pip: list[str] = setting([], "Requirements the runtime env installs on the nodes before the job, "
                                 "e.g. [\"scikit-learn==1.5.2\"].")
    cpus_per_job: float = setting(1.0, "CPUs a job asks Ray for when its spec names none (Ray's own default, 0, "
                                       "starts every job on the head node whatever the cluster's size).")
    resources: dict[str, float] = setting({}, "Custom Ray resources every job asks for, e.g. {\"a100\" = 1}.")
    env: dict[str, str] = setting({}, "Variables set for every job on the cluster.")


def _ray(settings: RayTargetSettings, workspace: Any) -> Any:
    from forgeml.plugins.ray.executor import RayExecutor

    return RayExecutor(settings, workspace)


@hookimpl
def forgeml_register_executors(register):
    """Offer the ray executor."""
    register("ray", _ray, settings=RayTargetSettings,
             description="jobs on a Ray cluster through its Job Submission API (GPUs as Ray resources)")
