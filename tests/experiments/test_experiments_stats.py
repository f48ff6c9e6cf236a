"""Experiment statistics checked against references: statsmodels, closed forms and simulations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from forgeml.errors import ValidationError
from forgeml.experiments import stats


class TestFixedHorizonTests:
    def test_welch_matches_statsmodels(self):
        from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

        rng = np.random.default_rng(1)
        a, b = rng.normal(10, 2, 400), rng.normal(10.4, 5, 250)
        c = stats.compare_means(("a", a), ("b", b), alpha=0.05)
        cm = CompareMeans(DescrStatsW(b), DescrStatsW(a))
        _, p, _ = cm.ttest_ind(usevar="unequal")
        low, high = cm.tconfint_diff(alpha=0.05, usevar="unequal")
        assert c.p_value == pytest.approx(p, rel=1e-9)
        assert (c.ci_low, c.ci_high) == pytest.approx((low, high), rel=1e-9)
        assert c.difference == pytest.approx(b.mean() - a.mean())

    def test_proportions_match_statsmodels_score_test(self):
        from statsmodels.stats.proportion import test_proportions_2indep

        c = stats.compare_proportions(("a", 100, 1000), ("b", 130, 1000))
        ref = test_proportions_2indep(130, 1000, 100, 1000, method="score", correction=False)
        assert c.p_value == pytest.approx(ref.pvalue)
        assert c.difference == pytest.approx(0.03)
        assert c.ci_low < c.difference < c.ci_high
        assert c.control.ci_low < 0.1 < c.control.ci_high

    def test_a_a_false_positive_rate_is_alpha(self):
        """500 A/A tests at one fixed horizon reject in about 5% of cases (binomial band)."""
        rng = np.random.default_rng(7)
        rejections = 0
        for _ in range(500):
            a, b = rng.binomial(2000, 0.1), rng.binomial(2000, 0.1)
            rejections += stats.compare_proportions(("a", a, 2000), ("b", b, 2000)).p_value < 0.05
        assert 0.025 <= rejections / 500 <= 0.08

    def test_delta_method_interval_covers_the_true_ratio(self):
        """Ratio of sums with correlated numerator and denominator: 95% intervals cover the truth ~95%."""
        rng = np.random.default_rng(3)
        covered = 0
        for _ in range(400):
            sessions = rng.poisson(5, 500) + 1
            clicks = rng.binomial(sessions, 0.2)
            s = stats.ratio_summary("a", clicks, sessions)
            covered += s.ci_low <= 0.2 <= s.ci_high
        assert 0.92 <= covered / 400 <= 0.98

    def test_ratio_comparison_finds_a_real_change(self):
        rng = np.random.default_rng(4)
        sa, sb = rng.poisson(5, 3000) + 1, rng.poisson(5, 3000) + 1
        c = stats.compare_ratios(("a", rng.binomial(sa, 0.20), sa), ("b", rng.binomial(sb, 0.23), sb))
        assert c.p_value < 1e-4 and c.ci_low < 0.03 < c.ci_high

    def test_bad_input_is_one_line(self):
        with pytest.raises(ValidationError, match="denominator sums to 0"):
            stats.ratio_summary("a", [1, 2], [0, 0])
        with pytest.raises(ValidationError, match="at least 2 units"):
            stats.compare_means(("a", [1.0]), ("b", [1.0, 2.0]))


class TestSequential:
    @staticmethod
    def _peeks(rng, effect: float, n: int = 4000, looks: int = 20):
        """One experiment looked at `looks` times: (always-valid p after each look, naive Welch p)."""
        a, b = rng.normal(0, 1, n), rng.normal(effect, 1, n)
        p_seq, naive = 1.0, []
        seq = []
        for k in np.linspace(n // looks, n, looks).astype(int):
            c = stats.compare_means(("a", a[:k]), ("b", b[:k]))
            p_seq = stats.always_valid_p(c.difference, c.extra["se"], 0.1, p_seq)
            seq.append(p_seq)
            naive.append(c.p_value)
        return seq, naive

    def test_a_a_false_positive_rate_stays_at_alpha_over_many_peeks(self):
        """300 A/A experiments, 20 peeks each: the always-valid p crosses 0.05 in at most ~5%, the naive one far more."""
        rng = np.random.default_rng(11)
        seq_fp = naive_fp = 0
        for _ in range(300):
            seq, naive = self._peeks(rng, 0.0)
            seq_fp += min(seq) < 0.05
            naive_fp += min(naive) < 0.05
        assert seq_fp / 300 <= 0.06
        assert naive_fp / 300 >= 0.12  # peeking at a fixed-horizon test inflates errors; the contrast is the point

    def test_a_real_effect_is_found(self):
        rng = np.random.default_rng(12)
        found = sum(min(self._peeks(rng, 0.15)[0]) < 0.05 for _ in range(50))
        assert found >= 45

    def test_p_values_never_rise_and_the_interval_holds_the_estimate(self):
        assert stats.always_valid_p(0.0, 0.1, 0.1, previous=0.02) == 0.02
        low, high = stats.always_valid_ci(0.3, 0.1, 0.1)
        fixed = 1.96 * 0.1
        assert low < 0.3 < high and high - 0.3 > fixed  # wider than the fixed-horizon interval

    def test_confidence_sequence_matches_the_ratio_at_its_edge(self):
        low, high = stats.always_valid_ci(0.0, 0.05, 0.2, alpha=0.05)
        assert stats.msprt(high, 0.05, 0.2) == pytest.approx(1 / 0.05, rel=1e-9)


class TestSampleSize:
    def test_proportion_sample_size_matches_the_closed_form(self):
        out = stats.sample_size("proportion", 0.10, 0.01)
        h = 2 * math.asin(math.sqrt(0.11)) - 2 * math.asin(math.sqrt(0.10))
        closed = 2 * ((sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) / h) ** 2  # var of 2·asin√p̂ is 1/n per arm
        assert out["control_units"] == math.ceil(closed)
        assert stats.power_at("proportion", 0.10, 0.01, out["control_units"]) == pytest.approx(0.8, abs=0.002)

    def test_mean_sample_size_and_relative_effects(self):
        out = stats.sample_size("mean", 50.0, 0.02, sd=20.0, relative=True)  # +1.0 on a mean of 50
        closed = 2 * ((sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * 20.0 / 1.0) ** 2
        assert abs(out["control_units"] - closed) / closed < 0.01  # t vs normal: within 1%
        assert out["total_units"] == 2 * out["control_units"]

    @pytest.mark.parametrize("kwargs, message", [
        ({"kind": "proportion", "baseline": 0.0, "mde": 0.01}, "lie in"),
        ({"kind": "mean", "baseline": 1.0, "mde": 0.1}, "standard deviation"),
        ({"kind": "median", "baseline": 1.0, "mde": 0.1, "sd": 1.0}, "not one of"),
        ({"kind": "proportion", "baseline": 0.1, "mde": 0.0}, "must not be 0"),
        ({"kind": "proportion", "baseline": 0.1, "mde": 0.01, "power": 1.0}, "strictly between"),
    ])
    def test_bad_requests_are_one_line_errors(self, kwargs, message):
        with pytest.raises(ValidationError, match=message):
            stats.sample_size(**kwargs)
