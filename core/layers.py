"""What core declares itself: its own plugins.toml sections (the provider layers join this table next)."""

from __future__ import annotations

import importlib

# Plain sections core's services read, as section -> "module:class"; imported when a workspace's
# configuration is validated, not by ``import forgeml``.
CORE_SECTIONS: dict[str, str] = {
    "scheduler": "forgeml.jobs.settings:SchedulerSettings",
    "tracking": "forgeml.tracking.settings:TrackingSettings",
    "registry": "forgeml.registry.settings:RegistrySettings",
    "serving": "forgeml.serving.settings:ServingSettings",
    "monitoring": "forgeml.monitoring.settings:MonitoringSettings",
    "pipelines": "forgeml.pipelines.settings:PipelinesSettings",
    "tuning": "forgeml.tuning.settings:TuningSettings",
}

CORE = "forgeml"


def core_sections() -> dict[str, type]:
    """Return core's own settings sections: section -> settings dataclass."""
    out: dict[str, type] = {}
    for section, target in CORE_SECTIONS.items():
        module, _, name = target.partition(":")
        out[section] = getattr(importlib.import_module(module), name)
    return out
