"""Experiment tracking: runs, params, metrics, artifacts, lineage and search.

Log inside ``with forgeml.start_run():`` (or from a forgeml job, which attaches to its run) with
``log_params``, ``log_metric(s)`` and ``log_artifact``; find runs again with ``search_runs(query)``
in the language described in :mod:`forgeml.tracking.query`.
"""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".active": ["ActiveRun"],
    ".api": ["active_run", "create_run", "delete_runs", "download_artifacts", "end_run", "finish_run",
        "flush", "get_metric_history", "get_run", "list_artifacts", "log_artifact", "log_dict", "log_input",
        "log_metric", "log_metrics", "log_param", "log_params", "log_text", "log_throughput", "purge_runs", "restore_runs",
        "search_runs", "set_tag", "set_tags", "start_run"],
    ".compare": ["Comparison", "compare_runs"],
    ".records": ["FAILED", "FINISHED", "KILLED", "RUNNING", "SCHEDULED", "ArtifactRecord", "Run"],
    ".transfer": ["export_run", "import_run", "metric_histories"],
})
