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


def parse_target(text: str, arms: list[str]) -> dict[str, float]:
    """Read a target policy: one arm name (all traffic to it) or ARM=SHARE pairs summing to 1."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) == 1 and "=" not in parts[0]:
        parts = [f"{parts[0]}=1"]
    target: dict[str, float] = {}
    for part in parts:
        arm, sep, share = part.partition("=")
        try:
            target[arm.strip()] = float(share) if sep else float("nan")
        except ValueError:
            target[arm.strip()] = float("nan")
        if not sep or not 0 <= target[arm.strip()] <= 1:
            raise ValidationError(f"target {text!r}: write one arm, or ARM=SHARE pairs with shares in [0, 1], "
                                  "e.g. candidate or control=0.2,candidate=0.8")
    unknown = [a for a in target if a not in arms]
    if unknown:
        raise ValidationError(f"target arm {unknown[0]!r} is not one of the logged arms {', '.join(arms) or '(none)'}")
    if abs(sum(target.values()) - 1) > 1e-6:
        raise ValidationError(f"target {text!r}: the shares add up to {sum(target.values()):g}, not 1")
    return target


def estimate(name: str, target: str | dict[str, float], now: float | None = None,
             workspace: Any = None) -> dict[str, Any]:
    """Estimate an experiment's metric had traffic followed ``target``, from its matured logged requests.

    Each logged request carries its arm and the propensity it was chosen with; the reward is the
    experiment's metric per request (outcomes inside the label window). The doubly robust reward
    model is the per-arm mean reward (the direct method).
    """
    import time

    import numpy as np

    from forgeml.experiments.analysis import MetricSpec, join_outcomes, requests_frame
    from forgeml.experiments.service import _utc, _ws
    from forgeml.feedback import schema
    from forgeml.feedback.outcomes import read_outcomes
    from forgeml.serving import read_prediction_log

    ws = _ws(workspace)
    exp = schema.get_experiment(ws, name)
    metric = MetricSpec(**exp["spec"]["metric"])
    if metric.kind == "ratio":
        raise ValidationError(f"experiment {name!r} measures a ratio; off-policy estimates need a per-request "
                              "reward (a proportion, mean or accuracy metric)")
    log = read_prediction_log(exp["endpoint"], start=_utc(exp["started_at"]), workspace=ws)
    outcomes = read_outcomes(metric.outcomes, since=exp["started_at"], workspace=ws)
    frame = join_outcomes(requests_frame(log, name), outcomes, metric, exp["spec"]["window_s"],
                          time.time() if now is None else now)
    frame = frame[frame["labelled"] & frame["_propensity"].notna()] if len(frame) else frame
    if len(frame) == 0:
        raise ValidationError(f"experiment {name!r} has no matured request with a logged propensity yet")
    arms = sorted({str(a) for a in frame["_arm"]})
    policy = parse_target(target, arms) if isinstance(target, str) else dict(target)
    r = frame["y"].to_numpy(dtype=float)
    p = frame["_propensity"].to_numpy(dtype=float)
    logged_arm = frame["_arm"].astype(str).to_numpy()
    t = np.array([policy.get(a, 0.0) for a in logged_arm])
    q = {a: float(r[logged_arm == a].mean()) for a in arms}
    q_logged = np.array([q[a] for a in logged_arm])
    q_target = np.full(len(r), sum(share * q.get(a, 0.0) for a, share in policy.items()))
    return {"experiment": name, "target": policy, "requests": int(len(r)), "logged_value": float(r.mean()),
            "per_arm": {a: {"requests": int((logged_arm == a).sum()), "mean_reward": q[a]} for a in arms},
            "estimates": [e.to_dict() for e in (ips(r, p, t), snips(r, p, t),
                                                doubly_robust(r, p, t, q_logged, q_target))]}
