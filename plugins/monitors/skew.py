"""The training-serving skew test: served feature values against the same features recomputed offline."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from forgeml.config import setting
from forgeml.contracts import MonitorResult


@dataclass
class SkewSettings:
    """How closely a served value must match its offline recomputation."""

    rel_tol: float = setting(1e-6, "Relative tolerance for numbers (sums computed in another order differ a little).")
    abs_tol: float = setting(1e-9, "Absolute tolerance for numbers near zero.")
    threshold: float = setting(0.0, "Share of mismatched rows above which the feature counts as skewed.")
    moderate: float = setting(0.01, "Share from which skew is moderate.")
    major: float = setting(0.1, "Share from which skew is major.")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


class SkewMonitor:
    """Counts rows whose served value differs from the offline one; the effect is the largest difference."""

    name = "skew"
    kinds = ("paired",)

    def __init__(self, settings: SkewSettings | None = None, workspace: Any = None):
        self.settings = settings or SkewSettings()

    def _same(self, offline: Any, served: Any) -> tuple[bool, float | None]:
        a, b = _number(offline), _number(served)
        if a is not None and b is not None:
            if math.isnan(a) and math.isnan(b):
                return True, 0.0
            return math.isclose(a, b, rel_tol=self.settings.rel_tol, abs_tol=self.settings.abs_tol), abs(a - b)
        if offline is None or served is None or (isinstance(offline, float) and math.isnan(offline)):
            both_missing = (offline is None or (isinstance(offline, float) and math.isnan(offline))) and (
                served is None or (isinstance(served, float) and math.isnan(served)))
            return both_missing, None
        if hasattr(offline, "tolist"):
            offline = offline.tolist()
        if hasattr(served, "tolist"):
            served = served.tolist()
        return offline == served, None

    def compare(self, column: str, reference: Any, current: Any) -> MonitorResult:
        """Compare aligned offline (reference) and served (current) values of one feature, row by row."""
        s = self.settings
        mismatched: list[int] = []
        largest: float | None = None
        diffs: list[float | None] = []
        for i, (offline, served) in enumerate(zip(reference, current)):
            same, diff = self._same(offline, served)
            diffs.append(diff)
            if not same:
                mismatched.append(i)
                if diff is not None and (largest is None or diff > largest):
                    largest = diff
        n = len(diffs)
        share = len(mismatched) / n if n else 0.0
        severity = "major" if share >= s.major else "moderate" if share >= s.moderate else (
            "minor" if share > s.threshold else "none")
        worst = sorted(mismatched, key=lambda i: -(diffs[i] or 0.0))[:5]
        return MonitorResult("skew", column, share, None, largest, share > s.threshold, severity,
                             {"rows": n, "mismatches": len(mismatched), "worst_rows": worst})
