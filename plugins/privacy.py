"""Erasers for the places outside the stores that keep personal data: prediction logs, dataset snapshots, run
artifacts and the dead letters of stream processing."""

from __future__ import annotations

from typing import Any

from forgeml import hookimpl


def _prediction_log(workspace: Any) -> Any:
    from forgeml.serving.erasure import PredictionLogEraser

    return PredictionLogEraser(workspace)


def _datasets(workspace: Any) -> Any:
    from forgeml.datasets.erasure import DatasetEraser

    return DatasetEraser(workspace)


def _run_artifacts(workspace: Any) -> Any:
    from forgeml.tracking.erasure import RunArtifactEraser

    return RunArtifactEraser(workspace)


def _dead_letters(workspace: Any) -> Any:
    from forgeml.features.dead_letters import DeadLetterEraser

    return DeadLetterEraser(workspace)


@hookimpl
def forgeml_register_erasers(register):
    """Offer the prediction-log, dataset-snapshot, run-artifact and dead-letter erasers."""
    register("prediction_log", _prediction_log)
    register("datasets", _datasets)
    register("run_artifacts", _run_artifacts)
    register("dead_letters", _dead_letters)


@hookimpl
def forgeml_on_upkeep(workspace, now):
    """Apply the retention limits when [privacy.retention] every_hours says a run is due."""
    from forgeml.privacy.retention import run_if_due

    run_if_due(workspace, now)
