"""The [pipelines] section of plugins.toml: where pipelines live, triggers and retraining per model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgeml.config import setting

STRATEGIES = ("scheduled", "triggered", "continuous")


@dataclass
class TriggerSettings:
    """Start a pipeline on a cron schedule or when new data arrives."""

    pipeline: str = setting(doc="The pipeline to start.")
    name: str = setting("", "Trigger name (default: derived from the pipeline and condition).")
    cron: str = setting("", "Cron expression, e.g. \"0 3 * * *\" (UTC).")
    on_dataset: str = setting("", "Start when a new version of this dataset is registered (\"*\": any).")
    on_feature_view: str = setting("", "Start when this feature view is materialized (\"*\": any).")
    params: dict[str, Any] = setting({}, "Pipeline parameters for runs this trigger starts.")


@dataclass
class RetrainingPolicy:
    """How one model is retrained."""

    strategy: str = setting(doc="scheduled (cron), triggered (its alerts) or continuous (new data).")
    pipeline: str = setting(doc="The retraining pipeline.")
    cron: str = setting("", "Cron expression for the scheduled strategy.")
    datasets: list[str] = setting([], "Datasets whose new versions retrain it (continuous strategy).")
    feature_views: list[str] = setting([], "Feature views whose materializations retrain it (continuous).")
    params: dict[str, Any] = setting({}, "Pipeline parameters.")


@dataclass
class PipelinesSettings:
    """Pipelines: where they are defined, caching, triggers and retraining per model."""

    modules: list[str] = setting([], "Modules defining pipelines: dotted names or .py files relative to the workspace.")
    cache: bool = setting(True, "Reuse a step's cached output when its code, inputs and parameters are unchanged.")
    trigger_mode: str = setting("inline", "inline: triggers run the pipeline in the process that saw the event; "
                                          "job: they submit `forgeml pipeline run` as a scheduler job.")
    triggers: list[TriggerSettings] | None = setting(
        None, "Triggers as [[pipelines.triggers]] tables: pipeline plus one of cron, on_dataset, on_feature_view.")
    retraining: dict[str, RetrainingPolicy] | None = setting(
        None, "Retraining per model as [pipelines.retraining.MODEL] tables: strategy, pipeline, cron, datasets.")
