"""Experiment tracking: runs, params, metrics, artifacts, lineage and search.

Log inside ``with forgeml.start_run():`` (or from a forgeml job, which attaches to its run) with
``log_params``, ``log_metric(s)`` and ``log_artifact``; find runs again with ``search_runs(query)``
in the language described in :mod:`forgeml.tracking.query`.
"""

from forgeml.tracking.active import ActiveRun
from forgeml.tracking.api import (
    active_run,
    create_run,
    delete_runs,
    download_artifacts,
    end_run,
    finish_run,
    flush,
    get_metric_history,
    get_run,
    list_artifacts,
    log_artifact,
    log_dict,
    log_input,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_text,
    log_throughput,
    restore_runs,
    search_runs,
    set_tag,
    set_tags,
    start_run,
)
from forgeml.tracking.compare import Comparison, compare_runs
from forgeml.tracking.records import FAILED, FINISHED, KILLED, RUNNING, SCHEDULED, ArtifactRecord, Run
from forgeml.tracking.reproduce import ReproducePlan, reproduce
from forgeml.tracking.transfer import export_run, import_run, metric_histories

__all__ = [
    "ActiveRun", "ArtifactRecord", "Comparison", "ReproducePlan", "Run",
    "FAILED", "FINISHED", "KILLED", "RUNNING", "SCHEDULED",
    "active_run", "compare_runs", "create_run", "delete_runs", "download_artifacts", "end_run", "export_run",
    "finish_run", "flush", "get_metric_history", "get_run", "import_run", "list_artifacts", "log_artifact",
    "log_dict", "log_input", "log_metric", "log_metrics", "log_param", "log_params", "log_text",
    "log_throughput", "metric_histories", "reproduce", "restore_runs", "search_runs", "set_tag", "set_tags",
    "start_run",
]
