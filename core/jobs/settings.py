"""The [scheduler] section: polling, supervision, retries and backoff."""

from __future__ import annotations

from dataclasses import dataclass

from forgeml.config import setting


@dataclass
class SchedulerSettings:
    """The job scheduler: polling, supervision, retries and backoff."""

    poll_interval_s: float = setting(0.5, "Seconds between checks of running jobs (submit and cancel wake it at once).")
    grace_period_s: float = setting(10.0, "Seconds between SIGTERM and SIGKILL when a job is cancelled, timed out or preempted.")
    backoff_base_s: float = setting(5.0, "Delay before the first retry of a transient failure, in seconds.")
    backoff_factor: float = setting(2.0, "Each further retry waits this many times longer.")
    backoff_max_s: float = setting(600.0, "Longest delay between two retries, in seconds.")
    retryable_exit_codes: list[int] = setting([], "Exit codes that count as transient failures and are retried.")
    retry_on_signal: bool = setting(True, "Retry attempts killed by a signal (the OOM killer, a stray kill).")
    transient_log_markers: list[str] = setting(
        ["CUDA out of memory", "CUDA error: out of memory", "torch.OutOfMemoryError"],
        "Text in an attempt's last log lines that marks the failure transient.",
    )
    log_tail_bytes: int = setting(16384, "How much of the end of a failed attempt's log is searched for markers.")
    default_cpus: float = setting(1.0, "CPUs a CPU-only job reserves when its spec sets none.")
    host_leases: bool = setting(True, "Claim GPUs through host-wide leases shared by every forgeml scheduler on this machine (any workspace, any user).")
    host_dir: str = setting("", "Folder the schedulers of this machine share for GPU leases and fair share (empty: $FORGEML_HOST_DIR, else /var/tmp/forgeml-host).")
    unfit_cycles: int = setting(
        10, "Consecutive placement passes a job must look impossible to fit before it is failed, so that a GPU"
            " inventory that briefly reports no GPUs does not fail pending jobs.")
    autostart: bool = setting(False, "Start a background scheduler when a job is submitted from the CLI and none runs.")
