"""Conformance suite for drift and quality monitors (contract: :class:`forgeml.contracts.Monitor`).

Subclass :class:`MonitorSuite` as ``Test...`` and give it a ``monitor`` fixture. For every column kind
the monitor declares in ``kinds`` the suite builds samples the way the kernel hands them over
(numeric: sorted float64 without NaN; categorical: :class:`CategoricalSample`; embedding: 2-D
float arrays; paired: two aligned float arrays, row i of one beside row i of the other). Rules:

- ``kinds`` is a non-empty subset of numeric, categorical, embedding, paired; ``name`` is the registered name;
- a result is a MonitorResult naming the test and the column, with a finite statistic, a p-value
  in [0, 1] or None, a severity of none/minor/moderate/major, and severity none when not drifted;
- two samples of one distribution are not drifted; a clearly shifted sample is;
- the same inputs give the same statistic, also from 8 threads at once (reports run columns in parallel);
- samples too small to judge give a result or raise ForgeError, never another exception.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from forgeml.contracts import CategoricalSample, Monitor, MonitorResult
from forgeml.errors import ForgeError

KINDS = ("numeric", "categorical", "embedding", "paired")
SEVERITIES = ("none", "minor", "moderate", "major")


def samples(kind: str, shift: float, seed: int, n: int = 3000) -> Any:
    """A sample of a column kind; ``shift`` moves its distribution (0 for the reference's)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if kind == "numeric":
        return np.sort(rng.normal(shift, 1.0, n))
    if kind == "embedding":
        return rng.normal(shift, 1.0, (n // 4, 8))
    if kind == "paired":
        # Paired values are the same rows seen twice (offline and served), so the seed must not
        # change them: only a shift makes the two sides disagree.
        return np.linspace(-3.0, 3.0, n) + shift
    weights = np.array([0.5, 0.3, 0.2]) if not shift else np.array([0.1, 0.2, 0.7])
    counts = np.bincount(rng.choice(3, size=n, p=weights), minlength=3).astype(float)
    return CategoricalSample(counts, ("a", "b", "c"))


def check_result(result: Any, monitor: Any, column: str) -> MonitorResult:
    """Fail unless a result is well formed for this monitor and column."""
    assert isinstance(result, MonitorResult), f"compare must return a MonitorResult, got {result!r}"
    assert result.test == monitor.name, f"result.test must be {monitor.name!r}, got {result.test!r}"
    assert result.column == column, f"result.column must be {column!r}, got {result.column!r}"
    assert isinstance(result.statistic, int | float) and math.isfinite(result.statistic), \
        f"statistic must be a finite number, got {result.statistic!r}"
    assert result.p_value is None or 0.0 <= result.p_value <= 1.0, f"p_value must lie in [0, 1], got {result.p_value}"
    assert result.severity in SEVERITIES, f"severity must be one of {SEVERITIES}, got {result.severity!r}"
    assert result.drifted or result.severity == "none", f"a result that did not drift has severity none, got {result}"
    return result


class MonitorSuite:
    """Tests every monitor must pass; subclass it and define a ``monitor`` fixture."""

    @pytest.fixture
    def monitor(self) -> Any:
        """The monitor under test: override it."""
        pytest.fail("define a `monitor` fixture returning your monitor", pytrace=False)

    def test_implements_the_contract(self, monitor: Any) -> None:
        """The monitor has a name, the kinds it applies to and compare()."""
        assert isinstance(monitor, Monitor)
        assert isinstance(monitor.name, str) and monitor.name
        assert monitor.kinds and set(monitor.kinds) <= set(KINDS), f"kinds must be among {KINDS}, got {monitor.kinds}"

    def test_same_distribution_is_not_drift(self, monitor: Any) -> None:
        """Two samples of one distribution are not drifted, for each kind it takes."""
        for kind in monitor.kinds:
            result = check_result(monitor.compare("x", samples(kind, 0, 1), samples(kind, 0, 2)), monitor, "x")
            assert not result.drifted, f"{kind}: expected no drift between samples of one distribution, got {result}"

    def test_shifted_distribution_is_drift(self, monitor: Any) -> None:
        """A clearly shifted sample is drifted, with a severity, for each kind it takes."""
        for kind in monitor.kinds:
            result = check_result(monitor.compare("x", samples(kind, 0, 1), samples(kind, 1.5, 2)), monitor, "x")
            assert result.drifted and result.severity != "none", f"{kind}: expected drift, got {result}"

    def test_deterministic_and_thread_safe(self, monitor: Any) -> None:
        """The same inputs give the same statistic, serially and from 8 threads at once."""
        for kind in monitor.kinds:
            ref, cur = samples(kind, 0, 1), samples(kind, 0.3, 2)
            expected = monitor.compare("x", ref, cur).statistic
            with ThreadPoolExecutor(8) as pool:
                got = [r.statistic for r in pool.map(monitor.compare, ["x"] * 16, [ref] * 16, [cur] * 16)]
            assert got == [expected] * 16, f"{kind}: expected statistic {expected} every time, got {sorted(set(got))}"

    def test_tiny_samples_give_a_result_or_a_forge_error(self, monitor: Any) -> None:
        """One value per sample is judged or refused with ForgeError, never another exception."""
        for kind in monitor.kinds:
            try:
                check_result(monitor.compare("x", samples(kind, 0, 1, n=4)[:1], samples(kind, 0, 2, n=4)[:1]),
                             monitor, "x")
            except ForgeError:
                pass
            except TypeError:
                if kind != "categorical":  # CategoricalSample cannot be sliced: the sample itself is fine
                    raise
