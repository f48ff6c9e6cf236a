"""Inside training code: the sampled parameters, intermediate reports and pruning, across processes.

Trials never import Optuna. On a local target ``report`` appends one line to the trial's report file,
so a trial opens no workspace and no database for it; the tuning process reads the file, logs the
values to the trial's tracking run and feeds them to the study's pruner. Elsewhere (a remote target,
where the tuner's files are not at hand) ``report`` logs to the tracking run, which comes back with the
job. A pruning decision comes back as a flag file that ``should_prune`` checks. The tuner also writes
the last step it has decided on; ``should_prune`` waits (briefly, bounded) until the decision on the
previous report is in, so a trial whose steps are faster than the tuner's poll is still stopped within
one step of the pruner's verdict, while a trial with slower steps never waits.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

INTERMEDIATE = "tuning/intermediate"
REPORTS_ENV = "FORGEML_TRIAL_REPORTS"
DECIDED_SUFFIX = ".decided"
# how long should_prune waits for the tuner's decision on the previous report before going on without it
DECISION_WAIT_ENV = "FORGEML_PRUNE_WAIT_S"
_reported: list[int] = []


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


def report(value: float, step: int) -> None:
    """Report an intermediate objective value at a step (Optuna's order); the tuner hands it to the pruner."""
    value, step = _checked(value, step)
    if not in_trial():
        return
    path = os.environ.get(REPORTS_ENV)
    if path:
        line = json.dumps([step, value, time.time()]) + "\n"
        # one O_APPEND write per report: a reader never sees half of a line that was written whole
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        _reported[:] = [*_reported[-1:], step]
        return
    from forgeml import tracking

    if tracking.active_run() is None:
        tracking.start_run()
    tracking.log_metric(INTERMEDIATE, value, step=step)
    tracking.flush()


def _checked(value: Any, step: Any) -> tuple[float, int]:
    """Validate report's arguments: a number and a whole step, as Optuna's ``trial.report(value, step)``."""
    from numbers import Integral, Real

    from forgeml.errors import ValidationError

    whole = isinstance(step, Integral) or isinstance(step, Real) and float(step).is_integer()
    if isinstance(step, bool) or not whole:
        hint = " (forgeml.report takes the value first, then the step, like Optuna's trial.report)" \
            if isinstance(value, Integral) else ""
        raise ValidationError(f"report step must be a whole number, got {step!r}{hint}")
    if step < 0:
        raise ValidationError(f"report step must be 0 or more, got {step!r}")
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValidationError(f"report value must be a number, got {value!r}")
    return float(value), int(step)


def should_prune() -> bool:
    """Whether the study's pruner asked this trial to stop (waiting briefly for its verdict on the last step)."""
    flag = os.environ.get("FORGEML_PRUNE_FLAG")
    if not flag:
        return False
    if len(_reported) > 1 and not Path(flag).exists():
        _await_decision(flag, _reported[-2])
    return Path(flag).exists()


def _await_decision(flag: str, step: int) -> None:
    """Wait until the tuner has decided on ``step`` (or pruned), at most FORGEML_PRUNE_WAIT_S seconds."""
    decided = flag + DECIDED_SUFFIX
    deadline = time.monotonic() + float(os.environ.get(DECISION_WAIT_ENV, "2"))
    pause = 0.0005
    while True:
        try:
            with open(decided, "rb") as f:
                if int(f.read() or -1) >= step:
                    return
        except (FileNotFoundError, ValueError):
            pass  # no decision yet, or one being replaced
        if Path(flag).exists() or time.monotonic() > deadline:
            return
        time.sleep(pause)
        pause = min(pause * 2, 0.01)
