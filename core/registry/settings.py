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
