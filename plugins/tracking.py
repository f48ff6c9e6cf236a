"""Experiment tracking: declares the [tracking] settings section."""

from __future__ import annotations

from forgeml import hookimpl


@hookimpl
def forgeml_register_settings(register):
    """Declare [tracking]: flush interval, system metrics sampling and context capture."""
    from forgeml.tracking.settings import TrackingSettings

    register("tracking", TrackingSettings)
