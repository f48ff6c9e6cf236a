"""The [registry] section: per-model promotion gates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgeml.config import setting


@dataclass
class ModelSettings:
    """Registry settings of one model ([registry.models.NAME])."""

    gates: list[dict[str, Any]] = setting(
        [], "Gates a promotion must pass, e.g. [{ gate = \"metric_threshold\", metric = \"roc_auc\", min = 0.8 }]; "
            "each may list stages = [\"PRODUCTION\"] it applies to."
    )
    description: str = setting("", "What the model is for.")


@dataclass
class RegistrySettings:
    """Model registry: promotion gates per model, as [registry.models.NAME] tables."""

    # None rather than {} so the default plugins.toml leaves room for [registry.models.NAME] tables
    models: dict[str, ModelSettings] | None = setting(
        None, "Per-model settings: add one [registry.models.NAME] table per model."
    )

    def check_providers(self, host: Any, prefix: str = "") -> None:
        """Check that every gate a model lists is a registered gate with valid settings."""
        for model, settings in (self.models or {}).items():
            for i, table in enumerate(settings.gates):
                configured_gate(host, table, f"{prefix}[registry.models.{model}] gates[{i}]")


def configured_gate(host: Any, table: dict[str, Any], where: str) -> tuple[Any, Any, list[str]]:
    """Resolve one gate entry to (provider, validated settings, the stages it applies to)."""
    from forgeml.errors import ConfigError
    from forgeml.selection import configure

    values = dict(table)
    name = values.pop("gate", None)
    if not isinstance(name, str):
        raise ConfigError(f"{where}: each gate needs gate = \"<name>\" (e.g. metric_threshold)")
    stages = values.pop("stages", ["PRODUCTION"])
    if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
        raise ConfigError(f"{where}: stages must be a list of stage names, got {stages!r}")
    provider, settings = configure(host, "gates", name, values, where)
    return provider, settings, stages
