"""Experiment statistics: the test that fits the metric, sample sizes, and always-valid sequential p-values.

Proportions use statsmodels' two-independent-sample test and Newcombe interval; means use Welch's t
(scipy); ratio metrics (sum of x over sum of y per arm, units i.i.d.) use the delta method. The
sequential test is the normal-mixture sequential probability ratio test (mSPRT) of Johari, Pekelis and
Walsh, "Always valid inference" (2017): its p-value stays valid however often it is looked at.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from forgeml.errors import ValidationError

KINDS = ("proportion", "mean", "ratio")


@dataclass
class ArmSummary:
    """One arm's metric: units, estimate and its confidence interval."""

    arm: str
    n: int
    estimate: float
    ci_low: float
    ci_high: float
    std_error: float


@dataclass
class Comparison:
    """Treatment against control: the difference, its interval, the fixed-horizon and sequential p-values."""

    metric: str
    kind: str
    test: str
    control: ArmSummary
    treatment: ArmSummary
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    relative: float | None
    sequential_p: float | None = None
    sequential_ci: tuple[float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the comparison as JSON-able values."""
        return asdict(self)


def _need(n: int, what: str, least: int = 2) -> None:
    if n < least:
        raise ValidationError(f"{what}: need at least {least} units per arm, got {n}")


def proportion_summary(arm: str, successes: float, n: int, alpha: float = 0.05) -> ArmSummary:
    """An arm's conversion rate with a Wilson interval."""
    from statsmodels.stats.proportion import proportion_confint

    _need(n, f"arm {arm!r}", 1)
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    p = successes / n
    return ArmSummary(arm, n, p, float(low), float(high), math.sqrt(p * (1 - p) / n))


def compare_proportions(control: tuple[str, float, int], treatment: tuple[str, float, int], alpha: float = 0.05,
                        metric: str = "conversion") -> Comparison:
    """Two conversion rates (name, successes, n): statsmodels' score test and Newcombe interval on the difference."""
    import numpy as np
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

    (ca, sa, na), (cb, sb, nb) = control, treatment
    a, b = proportion_summary(ca, sa, na, alpha), proportion_summary(cb, sb, nb, alpha)
    with np.errstate(all="ignore"):  # no conversions (or all) in both arms: nothing differs, p = 1
        res = test_proportions_2indep(sb, nb, sa, na, compare="diff", method="score", correction=False)
        low, high = confint_proportions_2indep(sb, nb, sa, na, compare="diff", method="newcomb", alpha=alpha)
    p_value = float(res.pvalue) if math.isfinite(res.pvalue) else 1.0
    diff = b.estimate - a.estimate
    se = math.sqrt(a.std_error ** 2 + b.std_error ** 2)
    return Comparison(metric, "proportion", "two-proportion score test", a, b, diff, float(low), float(high),
                      p_value, diff / a.estimate if a.estimate else None, extra={"se": se})


def mean_summary(arm: str, values: Any, alpha: float = 0.05) -> ArmSummary:
    """An arm's mean with a t interval."""
    import numpy as np
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    _need(len(x), f"arm {arm!r}")
    m, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x)))
    half = float(stats.t.ppf(1 - alpha / 2, len(x) - 1)) * se
    return ArmSummary(arm, len(x), m, m - half, m + half, se)


def compare_means(control: tuple[str, Any], treatment: tuple[str, Any], alpha: float = 0.05,
                  metric: str = "value") -> Comparison:
    """Two means (name, values) by Welch's t-test (scipy), with the Welch-Satterthwaite interval."""
    import numpy as np
    from scipy import stats

    (ca, xa), (cb, xb) = control, treatment
    a, b = mean_summary(ca, xa, alpha), mean_summary(cb, xb, alpha)
    res = stats.ttest_ind(np.asarray(xb, dtype=np.float64), np.asarray(xa, dtype=np.float64), equal_var=False)
    ci = res.confidence_interval(confidence_level=1 - alpha)
    diff = b.estimate - a.estimate
    se = math.sqrt(a.std_error ** 2 + b.std_error ** 2)
    return Comparison(metric, "mean", "Welch's t-test", a, b, diff, float(ci.low), float(ci.high),
                      float(res.pvalue), diff / a.estimate if a.estimate else None,
                      extra={"se": se, "df": float(res.df)})


def ratio_summary(arm: str, numerator: Any, denominator: Any, alpha: float = 0.05) -> ArmSummary:
    """An arm's ratio of sums (e.g. clicks per impression over users) with its delta-method interval."""
    import numpy as np
    from scipy import stats

    x, y = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    n = len(x)
    _need(n, f"arm {arm!r}")
    if len(y) != n:
        raise ValidationError(f"arm {arm!r}: numerator and denominator need one value per unit each")
    mx, my = x.mean(), y.mean()
    if my == 0:
        raise ValidationError(f"arm {arm!r}: the denominator sums to 0; the ratio is undefined")
    cov = np.cov(x, y, ddof=1)
    # Var(x̄/ȳ) ≈ (Var x / ȳ² − 2 x̄ Cov(x,y) / ȳ³ + x̄² Var y / ȳ⁴) / n
    var = (cov[0, 0] / my ** 2 - 2 * mx * cov[0, 1] / my ** 3 + mx ** 2 * cov[1, 1] / my ** 4) / n
    r, se = float(mx / my), float(math.sqrt(max(var, 0.0)))
    half = float(stats.norm.ppf(1 - alpha / 2)) * se
    return ArmSummary(arm, n, r, r - half, r + half, se)


def compare_ratios(control: tuple[str, Any, Any], treatment: tuple[str, Any, Any], alpha: float = 0.05,
                   metric: str = "ratio") -> Comparison:
    """Two ratio metrics (name, numerators, denominators per unit): a z-test on delta-method variances."""
    from scipy import stats

    a = ratio_summary(control[0], control[1], control[2], alpha)
    b = ratio_summary(treatment[0], treatment[1], treatment[2], alpha)
    diff = b.estimate - a.estimate
    se = math.sqrt(a.std_error ** 2 + b.std_error ** 2)
    p = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else (1.0 if diff == 0 else 0.0)
    half = float(stats.norm.ppf(1 - alpha / 2)) * se
    return Comparison(metric, "ratio", "delta-method z-test", a, b, diff, diff - half, diff + half, p,
                      diff / a.estimate if a.estimate else None, extra={"se": se})


# ---------------------------------------------------------------- sequential testing
def msprt(difference: float, std_error: float, tau: float) -> float:
    """The mixture likelihood ratio for a difference estimated as N(θ, se²) against θ = 0, prior θ ~ N(0, τ²)."""
    if std_error <= 0 or tau <= 0:
        return 1.0
    s2, t2 = std_error ** 2, tau ** 2
    log_lr = 0.5 * math.log(s2 / (s2 + t2)) + t2 * difference ** 2 / (2 * s2 * (s2 + t2))
    return math.exp(min(log_lr, 700.0))


def always_valid_p(difference: float, std_error: float, tau: float, previous: float = 1.0) -> float:
    """The always-valid p-value after this look: the smallest 1/Λ seen so far (previous is the last look's)."""
    return min(previous, 1.0, 1.0 / msprt(difference, std_error, tau))


def always_valid_ci(difference: float, std_error: float, tau: float, alpha: float = 0.05) -> tuple[float, float]:
    """The confidence sequence at this look: every θ whose mixture ratio stays below 1/alpha."""
    s2, t2 = std_error ** 2, tau ** 2
    if s2 <= 0:
        return difference, difference
    half = math.sqrt(2 * s2 * (s2 + t2) / t2 * (math.log(1 / alpha) + 0.5 * math.log((s2 + t2) / s2)))
    return difference - half, difference + half


def default_tau(comparison: Comparison) -> float:
    """The mixture's spread: a tenth of the metric's per-unit standard deviation (an effect of 0.1 SD)."""
    n = comparison.control.n
    sd = comparison.control.std_error * math.sqrt(max(n, 1))
    return 0.1 * sd if sd > 0 else 0.01


def add_sequential(comparison: Comparison, previous_p: float = 1.0, tau: float | None = None,
                   alpha: float = 0.05) -> Comparison:
    """Fill in the always-valid p-value and interval of a comparison, given the last look's p-value."""
    se = float(comparison.extra.get("se", 0.0))
    t = tau if tau is not None else default_tau(comparison)
    comparison.sequential_p = always_valid_p(comparison.difference, se, t, previous_p)
    comparison.sequential_ci = always_valid_ci(comparison.difference, se, t, alpha)
    comparison.extra["tau"] = t
    return comparison


# ---------------------------------------------------------------- sample size and power
def sample_size(kind: str, baseline: float, mde: float, alpha: float = 0.05, power: float = 0.8,
                sd: float | None = None, ratio: float = 1.0, relative: bool = False) -> dict[str, Any]:
    """Units per arm to detect a change of mde (absolute, or relative to baseline) with this power."""
    from statsmodels.stats.power import NormalIndPower, TTestIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValidationError(f"alpha and power must lie strictly between 0 and 1, got {alpha} and {power}")
    delta = mde * baseline if relative else mde
    if delta == 0:
        raise ValidationError("the minimum detectable effect must not be 0")
    if kind == "proportion":
        target = baseline + delta
        if not 0 < baseline < 1 or not 0 < target < 1:
            raise ValidationError(f"conversion rates must lie in (0, 1): baseline {baseline}, target {target}")
        effect = proportion_effectsize(target, baseline)
        n = NormalIndPower().solve_power(effect_size=abs(effect), alpha=alpha, power=power, ratio=ratio)
    elif kind in ("mean", "ratio"):
        if sd is None or sd <= 0:
            raise ValidationError(f"a {kind} metric needs its standard deviation per unit (sd > 0)")
        effect = abs(delta) / sd
        n = TTestIndPower().solve_power(effect_size=effect, alpha=alpha, power=power, ratio=ratio)
    else:
        raise ValidationError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    n1 = math.ceil(float(n))
    return {"kind": kind, "baseline": baseline, "absolute_effect": delta, "effect_size": float(abs(effect)),
            "alpha": alpha, "power": power, "control_units": n1, "treatment_units": math.ceil(n1 * ratio),
            "total_units": n1 + math.ceil(n1 * ratio)}


def power_at(kind: str, baseline: float, mde: float, n_per_arm: int, alpha: float = 0.05,
             sd: float | None = None, relative: bool = False) -> float:
    """The power of a test with n_per_arm units per arm to detect mde."""
    from statsmodels.stats.power import NormalIndPower, TTestIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    delta = mde * baseline if relative else mde
    if kind == "proportion":
        effect = abs(proportion_effectsize(baseline + delta, baseline))
        return float(NormalIndPower().power(effect, n_per_arm, alpha))
    if sd is None or sd <= 0:
        raise ValidationError(f"a {kind} metric needs its standard deviation per unit (sd > 0)")
    return float(TTestIndPower().power(abs(delta) / sd, n_per_arm, alpha))
