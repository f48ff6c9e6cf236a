"""Inside training code: the sampled parameters, intermediate reports and pruning, across processes.

Trials never import Optuna: ``report`` logs the value to the trial's tracking run, the tuning process
feeds it to the study's pruner, and a pruning decision comes back as a flag file that
``should_prune`` checks. A decision therefore arrives at most one tuner poll after the report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

INTERMEDIATE = "tuning/intermediate"


class TrialPruned(SystemExit):
    """Raise to stop a pruned trial; the process exits cleanly and the study records it as pruned."""

    def __init__(self, message: str = "trial pruned") -> None:
        super().__init__(0)
        self.message = message


def in_trial() -> bool:
    """Whether this process is a tuning trial."""
    return bool(os.environ.get("FORGEML_PRUNE_FLAG"))


def trial_params() -> dict[str, object]:
    """Return the sampled parameters of this trial (also available outside tuning as the job's params)."""
    raw = os.environ.get("FORGEML_PARAMS")
    return json.loads(raw) if raw else {}


def report(step: int, value: float) -> None:
    """Report an intermediate objective value at a step; the tuner hands it to the pruner."""
    if not in_trial():
        return
    from forgeml import tracking

    if tracking.active_run() is None:
        tracking.start_run()
    tracking.log_metric(INTERMEDIATE, float(value), step=int(step))
    tracking.flush()


def should_prune() -> bool:
    """Whether the study's pruner asked this trial to stop."""
    flag = os.environ.get("FORGEML_PRUNE_FLAG")
    return bool(flag) and Path(flag).exists()
