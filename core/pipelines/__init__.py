"""Pipelines: steps, DAGs, caching, retries and triggers."""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".dsl": ["Pipeline", "Step", "StepOutput", "get_pipeline", "load_pipelines", "pipeline", "step"],
    ".runner": ["PipelineRun", "StepRun", "get_run", "list_runs", "run_pipeline"],
    ".triggers": ["CronTriggers", "Trigger", "triggers"],
})
