"""Retraining triggers: the event hooks that start pipelines on new data, new features and alerts."""

from __future__ import annotations

from forgeml import hookimpl


@hookimpl
def forgeml_on_dataset_version_registered(dataset_version, workspace):
    """Start pipelines waiting for a new version of this dataset."""
    from forgeml.pipelines.triggers import on_dataset_version

    on_dataset_version(workspace, dataset_version)


@hookimpl
def forgeml_on_features_materialized(view, start, end, rows, workspace):
    """Start pipelines waiting for this feature view's materializations."""
    if rows:
        from forgeml.pipelines.triggers import on_features

        on_features(workspace, view, start, end)


@hookimpl
def forgeml_on_alert_fired(alert, workspace):
    """Start the pipeline the alert's rule names (drift-triggered retraining)."""
    from forgeml.pipelines.triggers import on_alert

    on_alert(workspace, alert)
