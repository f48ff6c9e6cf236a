"""Pipelines: steps, DAGs, caching, retries and triggers."""

from forgeml.pipelines.dsl import Pipeline, Step, StepOutput, get_pipeline, load_pipelines, pipeline, step
from forgeml.pipelines.runner import PipelineRun, StepRun, get_run, list_runs, run_pipeline
from forgeml.pipelines.triggers import CronTriggers, Trigger, triggers

__all__ = ["CronTriggers", "Pipeline", "PipelineRun", "Step", "StepOutput", "StepRun", "Trigger", "get_pipeline",
           "get_run", "list_runs", "load_pipelines", "pipeline", "run_pipeline", "step", "triggers"]
