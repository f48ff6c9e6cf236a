"""The [tracking] settings section (declared by the tracking plugin, read by the tracking services)."""

from __future__ import annotations

from dataclasses import dataclass

from forgeml.config import setting

DEFAULT_PACKAGES = [
    "torch", "lightning", "pytorch-lightning", "transformers", "accelerate", "datasets", "numpy", "pandas",
    "scikit-learn", "xgboost", "lightgbm", "jax", "tensorflow", "forgeml",
]


@dataclass
class TrackingSettings:
    """Experiment tracking: metric writer, captured context and system metrics."""

    flush_interval_s: float = setting(0.5, "Seconds between background flushes of buffered metrics (at most 1).")
    system_metrics: bool = setting(True, "Sample CPU, memory and GPU metrics while a run is active.")
    system_metrics_interval_s: float = setting(10.0, "Seconds between two system metric samples.")
    capture_git: bool = setting(True, "Record git commit, branch and the uncommitted diff of each run.")
    max_diff_kb: int = setting(5120, "Largest uncommitted diff stored as an artifact, in KiB (larger ones are cut).")
    packages: list[str] = setting(DEFAULT_PACKAGES, "Packages whose installed versions each run records.")
