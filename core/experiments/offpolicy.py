"""Off-policy estimates from exploration-logged traffic: IPS, self-normalized IPS and doubly robust.

Each logged decision carries the propensity with which the serving policy chose its action; a
candidate policy's value is then estimated from those logs without sending it any traffic.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from forgeml.errors import ValidationError


@dataclass
class PolicyValue:
    """An off-policy estimate with its standard error and the effective sample size of the weights."""

    estimator: str
    value: float
    std_error: float
    n: int
    effective_n: float

    def to_dict(self) -> dict[str, Any]:
        """Return the estimate as JSON-able values."""
        return asdict(self)


def _arrays(rewards: Any, propensities: Any, target: Any) -> tuple[Any, Any, Any]:
    import numpy as np

    r = np.asarray(rewards, dtype=np.float64)
    p = np.asarray(propensities, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if not (len(r) == len(p) == len(t)) or len(r) == 0:
        raise ValidationError("rewards, logged propensities and target probabilities need one value per "
                              f"decision each, got {len(r)}, {len(p)} and {len(t)}")
    if np.any(~np.isfinite(p)) or np.any(p <= 0) or np.any(p > 1):
        raise ValidationError("logged propensities must lie in (0, 1]; a decision logged with propensity 0 "
                              "could never have been made")
    if np.any(t < 0) or np.any(t > 1):
        raise ValidationError("target probabilities must lie in [0, 1]")
    return r, p, t


def _ess(w: Any) -> float:
    s = float(w.sum())
    return s * s / float((w * w).sum()) if s > 0 else 0.0


def ips(rewards: Any, propensities: Any, target: Any) -> PolicyValue:
    """Inverse propensity scoring: mean of reward × π_target(a|x) / π_logged(a|x); unbiased, high variance."""
    r, p, t = _arrays(rewards, propensities, target)
    w = t / p
    terms = w * r
    return PolicyValue("ips", float(terms.mean()), float(terms.std(ddof=1) / math.sqrt(len(r))) if len(r) > 1
                       else float("nan"), len(r), _ess(w))


def snips(rewards: Any, propensities: Any, target: Any) -> PolicyValue:
    """Self-normalized IPS: Σ w·r / Σ w; slightly biased, far steadier when weights are large."""
    r, p, t = _arrays(rewards, propensities, target)
    w = t / p
    total = float(w.sum())
    if total <= 0:
        raise ValidationError("the target policy never takes a logged action; nothing to estimate from")
    value = float((w * r).sum() / total)
    # delta-method standard error of a ratio estimator
    se = float(math.sqrt(((w * (r - value)) ** 2).sum()) / total)
    return PolicyValue("snips", value, se, len(r), _ess(w))


def doubly_robust(rewards: Any, propensities: Any, target: Any, predicted_logged: Any,
                  predicted_target: Any) -> PolicyValue:
    """Doubly robust: a reward model's value for the target policy plus IPS-weighted residuals.

    ``predicted_logged`` is the reward model's prediction for the logged action, ``predicted_target``
    its expected reward under the target policy (Σ_a π_target(a|x) q̂(x, a)) for each logged context.
    """
    import numpy as np

    r, p, t = _arrays(rewards, propensities, target)
    q_logged = np.asarray(predicted_logged, dtype=np.float64)
    q_target = np.asarray(predicted_target, dtype=np.float64)
    if len(q_logged) != len(r) or len(q_target) != len(r):
        raise ValidationError("the reward model's predictions need one value per logged decision")
    w = t / p
    terms = q_target + w * (r - q_logged)
    return PolicyValue("doubly_robust", float(terms.mean()),
                       float(terms.std(ddof=1) / math.sqrt(len(r))) if len(r) > 1 else float("nan"),
                       len(r), _ess(w))
