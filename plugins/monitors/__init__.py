"""Drift tests: PSI, KS, Jensen-Shannon, chi-squared, MMD and centroid distance, offered as monitors.

Each test reports its statistic, a p-value and an effect size. By default a column counts as
drifted when the p-value is below ``alpha`` AND the effect size reaches ``threshold``: at 200,000
rows a p-value flags the tiniest wobble, while on a few hundred rows a large-looking effect can be
noise, so each guards the other. ``decide = "effect"`` or ``"p_value"`` uses one alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgeml import hookimpl
from forgeml.config import setting
from forgeml.contracts import MonitorResult
from forgeml.errors import ConfigError

DECISIONS = ("both", "effect", "p_value")


@dataclass
class EffectSettings:
    """Decision thresholds shared by the drift tests."""

    alpha: float = setting(0.001, "p-value below which a difference is statistically significant.")
    threshold: float = setting(0.01, "Effect size at which a column counts as drifted (severity minor).")
    moderate: float = setting(0.05, "Effect size from which drift is moderate.")
    major: float = setting(0.1, "Effect size from which drift is major.")
    decide: str = setting("both", "both: p < alpha and effect >= threshold; effect: effect size only; p_value: p only.")


def _check(settings: Any, name: str) -> None:
    if settings.decide not in DECISIONS:
        raise ConfigError(f"monitor {name!r}: decide must be one of {', '.join(DECISIONS)}, got {settings.decide!r}")
    if not settings.threshold <= settings.moderate <= settings.major:
        raise ConfigError(f"monitor {name!r}: thresholds must satisfy threshold <= moderate <= major "
                          f"(got {settings.threshold}, {settings.moderate}, {settings.major})")
    if not 0 < settings.alpha < 1:
        raise ConfigError(f"monitor {name!r}: alpha must be between 0 and 1, got {settings.alpha}")


def decide(settings: Any, p_value: float | None, effect: float | None) -> tuple[bool, str]:
    """Apply a test's decision rule; return (drifted, severity)."""
    significant = p_value is not None and p_value < settings.alpha
    large = effect is not None and effect >= settings.threshold
    drifted = {"both": significant and large, "effect": large, "p_value": significant}[settings.decide]
    if not drifted:
        return False, "none"
    size = effect or 0.0
    return True, "major" if size >= settings.major else "moderate" if size >= settings.moderate else "minor"


class _Test:
    """Shared plumbing: settings, decision and result building."""

    name = ""
    kinds: tuple[str, ...] = ()

    def __init__(self, settings: Any, workspace: Any = None):
        _check(settings, self.name)
        self.settings = settings

    def _result(self, column: str, stat: tuple[float, float | None, float | None, dict[str, Any]]) -> MonitorResult:
        statistic, p_value, effect, details = stat
        drifted, severity = decide(self.settings, p_value, effect)
        return MonitorResult(self.name, column, statistic, p_value, effect, drifted, severity, details)


@dataclass
class PsiSettings:
    """Population stability index over reference-quantile bins."""

    bins: int = setting(10, "Number of quantile bins of the reference (numeric columns).")
    alpha: float = setting(0.001, "p-value below which a difference is significant (decide = both or p_value).")
    threshold: float = setting(0.1, "PSI at which a column counts as drifted: below is stable.")
    moderate: float = setting(0.1, "PSI from which drift is moderate.")
    major: float = setting(0.25, "PSI from which drift is major.")
    decide: str = setting("effect", "effect: PSI alone (the usual practice); both: also p < alpha; p_value: p only.")


class PsiMonitor(_Test):
    """PSI: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major (configurable)."""

    name = "psi"
    kinds = ("numeric", "categorical")

    def compare(self, column: str, reference: Any, current: Any) -> MonitorResult:
        """Compare two samples with PSI."""
        from forgeml.plugins.monitors import stattests as st

        if hasattr(reference, "counts"):
            return self._result(column, st.psi_from_counts(reference.counts, current.counts))
        return self._result(column, st.psi_numeric(reference, current, self.settings.bins))


class KsMonitor(_Test):
    """Kolmogorov-Smirnov: the effect size is D, the largest gap between the two CDFs."""

    name = "ks"
    kinds = ("numeric",)

    def compare(self, column: str, reference: Any, current: Any) -> MonitorResult:
        """Compare two numeric samples with the two-sample KS test."""
        from forgeml.plugins.monitors import stattests as st

        return self._result(column, st.ks(reference, current))


@dataclass
class JensenShannonSettings:
    """Jensen-Shannon distance (base 2, 0..1) between histograms."""

    bins: int = setting(20, "Number of quantile bins of the reference (numeric columns).")
    alpha: float = setting(0.001, "p-value below which a difference is significant.")
    threshold: float = setting(0.1, "Distance at which a column counts as drifted.")
    moderate: float = setting(0.1, "Distance from which drift is moderate.")
    major: float = setting(0.2, "Distance from which drift is major.")
    decide: str = setting("both", "both: p < alpha and distance >= threshold; effect: distance only; p_value: p only.")


class JensenShannonMonitor(_Test):
    """Jensen-Shannon distance with a homogeneity-test p-value."""

    name = "jensen_shannon"
    kinds = ("numeric", "categorical")

    def compare(self, column: str, reference: Any, current: Any) -> MonitorResult:
        """Compare two samples with the Jensen-Shannon distance."""
        from forgeml.plugins.monitors import stattests as st

        if hasattr(reference, "counts"):
            return self._result(column, st.jensen_shannon_from_counts(reference.counts, current.counts))
        return self._result(column, st.jensen_shannon_numeric(reference, current, self.settings.bins))


@dataclass
class Chi2Settings:
    """Chi-squared homogeneity test; the effect size is Cramér's V."""

    alpha: float = setting(0.001, "p-value below which a difference is significant.")
    threshold: float = setting(0.02, "Cramér's V at which a column counts as drifted (severity minor).")
    moderate: float = setting(0.05, "Cramér's V from which drift is moderate.")
    major: float = setting(0.1, "Cramér's V from which drift is major.")
    decide: str = setting("both", "both: p < alpha and V >= threshold; effect: V only; p_value: p only.")


class Chi2Monitor(_Test):
    """Chi-squared test of category counts; reports categories that are new in the current sample."""

    name = "chi2"
    kinds = ("categorical",)

    def compare(self, column: str, reference: Any, current: Any) -> MonitorResult:
        """Compare two categorical samples with a chi-squared test."""
        from forgeml.plugins.monitors import stattests as st

        result = self._result(column, st.chi2_from_counts(reference.counts, current.counts))
        total = float(current.counts.sum()) or 1.0
        result.details["new_categories"] = {
            cat: round(float(c) / total, 6)
            for cat, r, c in zip(current.categories, reference.counts, current.counts) if r == 0 and c > 0
        }
        return result


@dataclass
class MmdSettings:
    """Maximum mean discrepancy (RBF kernel) on a subsample, with a permutation p-value."""

    sample: int = setting(500, "Rows drawn from each side (the kernel matrix is quadratic in this).")
    permutations: int = setting(100, "Permutations for the p-value.")
    alpha: float = setting(0.05, "p-value below which a difference is significant.")
    threshold: float = setting(0.01, "MMD² at which a column counts as drifted.")
    moderate: float = setting(0.05, "MMD² from which drift is moderate.")
    major: float = setting(0.1, "MMD² from which drift is major.")
    decide: str = setting("both", "both: p < alpha and MMD² >= threshold; effect: MMD² only; p_value: p only.")


class MmdMonitor(_Test):
    """MMD² between embedding samples."""

    name = "mmd"
    kinds = ("embedding",)

    def compare(self, column: str, reference: Any, current: Any) -> MonitorResult:
        """Compare two embedding samples with MMD²."""
        from forgeml.plugins.monitors import stattests as st

        s = self.settings
        return self._result(column, st.mmd(reference, current, s.sample, s.permutations))


@dataclass
class CentroidSettings:
    """Distance between mean embeddings in units of the reference spread."""

    alpha: float = setting(0.001, "p-value below which a difference is significant.")
    threshold: float = setting(0.05, "Relative centroid distance at which a column counts as drifted.")
    moderate: float = setting(0.1, "Relative distance from which drift is moderate.")
    major: float = setting(0.3, "Relative distance from which drift is major.")
    decide: str = setting("both", "both: p < alpha and distance >= threshold; effect: distance only; p_value: p only.")


class CentroidMonitor(_Test):
    """Centroid distance between embedding samples."""

    name = "centroid"
    kinds = ("embedding",)

    def compare(self, column: str, reference: Any, current: Any) -> MonitorResult:
        """Compare two embedding samples by the distance of their means."""
        from forgeml.plugins.monitors import stattests as st

        return self._result(column, st.centroid_distance(reference, current))


@hookimpl
def forgeml_register_monitors(register):
    """Offer the built-in drift tests."""
    register("psi", PsiMonitor, settings=PsiSettings, description="population stability index, quantile bins")
    register("ks", KsMonitor, settings=EffectSettings, description="Kolmogorov-Smirnov; effect size D")
    register("jensen_shannon", JensenShannonMonitor, settings=JensenShannonSettings,
             description="Jensen-Shannon distance over histograms")
    register("chi2", Chi2Monitor, settings=Chi2Settings, description="chi-squared test; effect size Cramér's V")
    register("mmd", MmdMonitor, settings=MmdSettings, description="RBF-kernel MMD² for embeddings")
    register("centroid", CentroidMonitor, settings=CentroidSettings,
             description="distance of mean embeddings for embeddings")
    from forgeml.plugins.monitors.skew import SkewMonitor, SkewSettings

    register("skew", SkewMonitor, settings=SkewSettings,
             description="training-serving skew: served feature values against their offline recomputation")
