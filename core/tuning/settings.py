"""The [tuning] section: the defaults `forgeml tune` uses when a flag is not given."""

from __future__ import annotations

from dataclasses import dataclass

from forgeml.config import setting


@dataclass
class TuningSettings:
    """Hyperparameter tuning."""

    poll_interval_s: float = setting(0.02, "How often the tuner checks whether its trials' jobs ended.")
    report_interval_s: float = setting(0.1, "How often a running trial's reports are handed to the pruner.")
