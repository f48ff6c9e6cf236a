"""Training jobs: specs, the queue, the GPU-aware scheduler and supervision."""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".checkpoint": ["checkpoint", "checkpoint_dir", "job_params", "latest_checkpoint", "resume", "should_stop"],
    ".queue": ["CANCELLED", "FAILED", "PENDING", "RUNNING", "STATES", "SUCCEEDED", "Job", "cancel",
        "follow_logs", "get_job", "job_attempts", "job_events", "list_jobs", "read_logs", "retry", "submit",
        "wait"],
    ".reproduce": ["ReproducePlan", "reproduce"],
    ".scheduler": ["Scheduler"],
    ".spec": ["JobSpec", "parse_duration", "parse_memory"],
})
