"""Inside training code: the sampled parameters, intermediate reports and pruning, across processes.

Trials never import Optuna. On a local target ``report`` appends one line to the trial's report file,
so a trial opens no workspace and no database for it; the tuning process reads the file, logs the
values to the trial's tracking run and feeds them to the study's pruner. Elsewhere (a remote target,
where the tuner's files are not at hand) ``report`` logs to the tracking run, which comes back with the
job. A pruning decision comes back as a flag file that ``should_prune`` checks, at most one tuner poll
after the report.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

INTERMEDIATE = "tuning/intermediate"
REPORTS_ENV = "FORGEML_TRIAL_REPORTS"


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
    path = os.environ.get(REPORTS_ENV)
    if path:
        line = json.dumps([int(step), float(value), time.time()]) + "\n"
        # one O_APPEND write per report: a reader never sees half of a line that was written whole
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
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
