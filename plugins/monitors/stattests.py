"""Vectorized two-sample drift statistics: PSI, KS, Jensen-Shannon, chi-squared, MMD, centroid distance.

Each function takes plain numpy inputs (numeric: 1-D float arrays sorted ascending, without NaNs; categorical: bin
counts over a shared category list; embeddings: 2-D float arrays) and returns
``(statistic, p_value, effect_size, details)``. Decisions (drifted, severity) are the monitors' job.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Stat = tuple[float, float | None, float | None, dict[str, Any]]

# Proportions are floored so a bin empty on one side gives a large, finite PSI instead of infinity.
EPS = 1e-4


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Return the inner edges of up to ``bins`` quantile bins of a sorted reference (duplicates removed)."""
    pos = np.linspace(0.0, 1.0, bins + 1)[1:-1] * (len(reference) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(reference) - 1)
    frac = pos - lo
    # numpy's default (linear) quantile, read straight off the sorted array instead of partitioning again
    return np.unique(reference[lo] * (1 - frac) + reference[hi] * frac)


def binned_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Count sorted values into the bins delimited by sorted inner edges (len(edges) + 1 bins)."""
    cuts = np.searchsorted(values, edges, side="right")
    return np.diff(np.concatenate([[0], cuts, [len(values)]])).astype(np.float64)


def _chi2_sf(x: float, dof: int) -> float:
    """Chi-squared survival function (scipy.special is far lighter to import than scipy.stats)."""
    from scipy.special import chdtrc

    return float(chdtrc(dof, x))


def _effective_n(n: float, m: float) -> float:
    return 1.0 / (1.0 / n + 1.0 / m)


def psi_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> Stat:
    """Population stability index of two histograms over the same bins, with a chi-squared p-value."""
    n, m = ref_counts.sum(), cur_counts.sum()
    p = np.maximum(ref_counts / n, EPS)
    q = np.maximum(cur_counts / m, EPS)
    value = float(np.sum((q - p) * np.log(q / p)))
    # n_eff * PSI is asymptotically chi-squared with (bins - 1) degrees of freedom under no drift
    dof = max(int(np.count_nonzero((ref_counts + cur_counts) > 0)) - 1, 1)
    p_value = _chi2_sf(value * _effective_n(n, m), dof)
    return value, p_value, value, {"bins": int(len(ref_counts))}


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> Stat:
    """PSI over quantile bins of the reference."""
    edges = quantile_edges(reference, bins)
    return psi_from_counts(binned_counts(reference, edges), binned_counts(current, edges))


def ks(reference: np.ndarray, current: np.ndarray) -> Stat:
    """Two-sample Kolmogorov-Smirnov on sorted samples: D (the effect size, largest CDF gap) and its p-value."""
    a, b = reference, current
    n, m = len(a), len(b)
    # Between two reference points F_a is flat while F_b climbs, so the largest gaps sit at a reference
    # point (F_a jumps up) or just before one (F_b has caught up): one merge of a into b finds both.
    right = np.searchsorted(b, a, side="right")
    left = right.copy()
    tied = np.flatnonzero((right > 0) & (b[np.maximum(right - 1, 0)] == a))
    if len(tied):
        left[tied] = np.searchsorted(b, a[tied], side="left")
    # F_a at a[i] counts every a <= a[i]; just before a[i] every a < a[i] (runs of ties share both)
    new_run = np.ones(n, dtype=bool)
    new_run[1:] = a[1:] != a[:-1]
    first = np.maximum.accumulate(np.where(new_run, np.arange(n), 0))
    end_run = np.ones(n, dtype=bool)
    end_run[:-1] = new_run[1:]
    last = np.flip(np.minimum.accumulate(np.flip(np.where(end_run, np.arange(n), n - 1))))
    above = (last + 1) / n - right / m
    below = left / m - first / n
    ia, ib = int(np.argmax(above)), int(np.argmax(below))
    d, at = (float(above[ia]), float(a[ia])) if above[ia] >= below[ib] else (float(below[ib]), float(a[ib]))
    # Kolmogorov's limit with Stephens' small-sample correction: within a few hundredths of scipy's
    # asymptotic p-value on small samples, identical on large ones, and it avoids importing
    # scipy.stats, which costs seconds on a cold start
    from scipy.special import kolmogorov

    root = np.sqrt(n * m / (n + m))
    p_value = float(kolmogorov((root + 0.12 + 0.11 / root) * d))
    return d, p_value, d, {"at": at}


def _g_test(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Chi-squared homogeneity test of a 2 x k table; return (chi2, p_value)."""
    keep = (ref_counts + cur_counts) > 0
    r, c = ref_counts[keep], cur_counts[keep]
    n, m = r.sum(), c.sum()
    total = r + c
    er, ec = total * n / (n + m), total * m / (n + m)
    stat = float(np.sum((r - er) ** 2 / er) + np.sum((c - ec) ** 2 / ec))
    dof = max(len(r) - 1, 1)
    return stat, _chi2_sf(stat, dof)


def jensen_shannon_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> Stat:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two histograms, with a homogeneity p-value."""
    p = ref_counts / ref_counts.sum()
    q = cur_counts / cur_counts.sum()
    mid = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / mid[nz])))

    distance = float(np.sqrt(max((kl(p) + kl(q)) / 2, 0.0)))
    _, p_value = _g_test(ref_counts, cur_counts)
    return distance, p_value, distance, {"bins": int(len(ref_counts))}


def jensen_shannon_numeric(reference: np.ndarray, current: np.ndarray, bins: int = 20) -> Stat:
    """Jensen-Shannon distance over quantile bins of the reference."""
    edges = quantile_edges(reference, bins)
    return jensen_shannon_from_counts(binned_counts(reference, edges), binned_counts(current, edges))


def chi2_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> Stat:
    """Chi-squared homogeneity test; the effect size is Cramér's V (sqrt(chi2 / N) for a 2 x k table)."""
    stat, p_value = _g_test(ref_counts, cur_counts)
    total = float(ref_counts.sum() + cur_counts.sum())
    v = float(np.sqrt(stat / total)) if total else 0.0
    return stat, p_value, v, {}


def mmd(reference: np.ndarray, current: np.ndarray, sample: int = 500, permutations: int = 100,
        seed: int = 0) -> Stat:
    """RBF-kernel MMD² on a subsample (median-heuristic bandwidth) with a permutation p-value."""
    rng = np.random.default_rng(seed)
    x = reference[rng.choice(len(reference), min(sample, len(reference)), replace=False)]
    y = current[rng.choice(len(current), min(sample, len(current)), replace=False)]
    both = np.concatenate([x, y]).astype(np.float64)
    sq = (both * both).sum(1)[:, None] + (both * both).sum(1)[None, :] - 2 * both @ both.T
    median = float(np.median(sq[np.triu_indices(len(both), 1)]))
    gamma = 1.0 / max(median, 1e-12)
    # MMD² (biased) is w'Kw with w = +1/nx on one side and -1/ny on the other, so every permutation
    # is one column of a single matrix product over the same kernel matrix
    kernel = np.exp(-gamma * np.maximum(sq, 0.0))
    nx, total = len(x), len(both)
    base = np.concatenate([np.full(nx, 1.0 / nx), np.full(total - nx, -1.0 / (total - nx))])
    weights = np.stack([base] + [rng.permutation(base) for _ in range(permutations)], axis=1)
    stats = np.einsum("ij,ij->j", weights, kernel @ weights)
    observed = float(stats[0])
    p_value = (int(np.sum(stats[1:] >= observed)) + 1) / (permutations + 1)
    return observed, p_value, observed, {"sample": int(len(both)), "gamma": gamma}


def centroid_distance(reference: np.ndarray, current: np.ndarray) -> Stat:
    """Distance between mean embeddings in units of the reference spread, with a Hotelling-style p-value."""
    mu_r, mu_c = reference.mean(0), current.mean(0)
    spread = float(np.sqrt(reference.var(0).sum()))
    dist = float(np.linalg.norm(mu_c - mu_r))
    effect = dist / spread if spread > 0 else 0.0
    # under no drift, each coordinate's mean gap is ~N(0, var * (1/n + 1/m)); the sum of squares is ~chi2(d)
    var = (reference.var(0) / len(reference) + current.var(0) / len(current))
    z2 = float(np.sum((mu_c - mu_r) ** 2 / np.maximum(var, 1e-300)))
    p_value = _chi2_sf(z2, reference.shape[1])
    return dist, p_value, effect, {"dims": int(reference.shape[1])}
