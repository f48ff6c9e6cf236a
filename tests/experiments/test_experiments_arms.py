"""Arms and propensities, team-draft interleaving and off-policy estimates on simulated traffic."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from forgeml.errors import ConfigError, ValidationError
from forgeml.experiments import offpolicy
from forgeml.feedback import interleaving
from forgeml.serving.arms import (
    HOLDOUT,
    Allocator,
    ArmsConfig,
    ArmStats,
    policy_shares,
    read_shares,
    write_shares,
)

KEYS = [f"user-{i}" for i in range(40_000)]


def _counts(alloc: Allocator) -> collections.Counter:
    return collections.Counter(alloc.assign(k)[0] for k in KEYS)


class TestAllocation:
    def test_fixed_split_with_holdout_matches_its_proportions_and_propensities(self):
        alloc = Allocator("exp", ArmsConfig(["a", "b", "c"], weights=[2, 1, 1], holdout=0.1))
        counts = _counts(alloc)
        props = alloc.propensities()
        assert props == pytest.approx({HOLDOUT: 0.1, "a": 0.45, "b": 0.225, "c": 0.225})
        assert sum(props.values()) == pytest.approx(1.0)
        for arm, p in props.items():
            assert counts[arm] / len(KEYS) == pytest.approx(p, abs=0.012)
        # each decision carries exactly its arm's propensity
        assert {alloc.assign(k) for k in KEYS[:500]} <= set(props.items())

    def test_assignment_is_sticky(self):
        alloc = Allocator("exp", ArmsConfig(["a", "b"]))
        first = [alloc.assign(k) for k in KEYS[:2000]]
        again = Allocator("exp", ArmsConfig(["a", "b"]))  # another process, same experiment
        assert [again.assign(k) for k in KEYS[:2000]] == first
        other = Allocator("other", ArmsConfig(["a", "b"]))  # another experiment reshuffles
        assert [other.assign(k) for k in KEYS[:2000]] != first

    def test_the_holdout_never_moves_when_the_bandit_does(self):
        config = ArmsConfig(["a", "b"], policy="thompson", holdout=0.05)
        alloc = Allocator("exp", config)
        held = {k for k in KEYS if alloc.assign(k)[0] == HOLDOUT}
        alloc.update({"a": ArmStats(1000, 100), "b": ArmStats(1000, 160)})
        assert {k for k in KEYS if alloc.assign(k)[0] == HOLDOUT} == held
        assert len(held) / len(KEYS) == pytest.approx(0.05, abs=0.005)

    def test_epsilon_greedy_exploits_the_best_arm_and_explores_the_rest(self):
        config = ArmsConfig(["a", "b", "c"], policy="epsilon_greedy", epsilon=0.3)
        shares = policy_shares(config, {"a": ArmStats(100, 10), "b": ArmStats(100, 30), "c": ArmStats(100, 20)})
        assert shares == pytest.approx([0.1, 0.8, 0.1])
        alloc = Allocator("eg", config, shares)
        counts = _counts(alloc)
        assert counts["b"] / len(KEYS) == pytest.approx(0.8, abs=0.012)

    def test_thompson_sampling_moves_traffic_to_the_better_arm_and_keeps_a_floor(self):
        config = ArmsConfig(["a", "b", "c"], policy="thompson", min_share=0.02)
        even = policy_shares(config)
        assert even == pytest.approx([1 / 3] * 3, abs=0.02)
        shares = policy_shares(config, {"a": ArmStats(2000, 200), "b": ArmStats(2000, 260), "c": ArmStats(2000, 190)})
        assert sum(shares) == pytest.approx(1.0)
        assert shares[1] > 0.9 and min(shares) >= 0.02
        # the same outcomes give every serving process the same split
        assert policy_shares(config, {"a": ArmStats(2000, 200), "b": ArmStats(2000, 260),
                                      "c": ArmStats(2000, 190)}) == shares

    def test_thompson_with_continuous_rewards(self):
        config = ArmsConfig(["a", "b"], policy="thompson", reward="continuous")
        rng = np.random.default_rng(0)
        xa, xb = rng.normal(5, 2, 500), rng.normal(5.5, 2, 500)
        stats = {"a": ArmStats(500, xa.sum(), (xa ** 2).sum()), "b": ArmStats(500, xb.sum(), (xb ** 2).sum())}
        assert policy_shares(config, stats)[1] > 0.9

    @pytest.mark.parametrize("config, message", [
        (ArmsConfig([]), "one or more arms"),
        (ArmsConfig(["a", "a"]), "distinct"),
        (ArmsConfig(["a", HOLDOUT]), "reserved"),
        (ArmsConfig(["a", "b"], policy="ucb"), "not one of"),
        (ArmsConfig(["a", "b"], weights=[1.0]), "weights"),
        (ArmsConfig(["a", "b"], holdout=1.0), "holdout"),
        (ArmsConfig(["a", "b"], epsilon=2.0), "epsilon"),
    ])
    def test_bad_configs_are_one_line(self, config, message):
        with pytest.raises(ConfigError, match=message):
            Allocator("exp", config)

    def test_shares_written_by_one_process_are_read_by_another(self, tmp_path):
        write_shares(tmp_path, "fraud", "exp", ["a", "b"], [0.3, 0.7])
        assert read_shares(tmp_path, "fraud", "exp", ["a", "b"]) == [0.3, 0.7]
        assert read_shares(tmp_path, "fraud", "other", ["a", "b"]) is None  # another experiment's file
        assert read_shares(tmp_path, "fraud", "exp", ["a", "c"]) is None
        (tmp_path / "experiments" / "shares" / "fraud.json").write_text("{not json")
        assert read_shares(tmp_path, "fraud", "exp", ["a", "b"]) is None
        with pytest.raises(ValidationError, match="summing to 1"):
            Allocator("exp", ArmsConfig(["a", "b"]), [0.5, 0.6])


class TestInterleaving:
    def test_team_draft_keeps_each_rankers_order_and_balances_the_teams(self):
        a, b = ["d1", "d2", "d3", "d4", "d5"], ["d3", "d1", "d6", "d7", "d2"]
        for key in ("q1", "q2", "q3", "q4"):
            merged = interleaving.team_draft(a, b, key=key, length=6)
            assert len(merged.items) == len(set(merged.items)) == 6
            assert abs(merged.teams.count("a") - merged.teams.count("b")) <= 1
            for team, ranking in (("a", a), ("b", b)):
                picked = [i for i, t in zip(merged.items, merged.teams, strict=True) if t == team]
                assert picked == sorted(picked, key=ranking.index)
            assert interleaving.team_draft(a, b, key=key, length=6) == merged  # sticky per query key

    def test_clicks_on_the_better_ranker_win_significantly(self):
        rng = np.random.default_rng(5)
        results = []
        for q in range(400):
            relevant = {f"r{q}-{i}" for i in range(3)}
            good = sorted(relevant) + [f"x{q}-{i}" for i in range(5)]
            poor = [f"x{q}-{i}" for i in range(5)] + sorted(relevant)
            merged = interleaving.team_draft(poor, good, key=f"q{q}", length=8)
            # a user scans from the top and clicks relevant documents with a position-decaying chance
            clicks = [d for pos, d in enumerate(merged.items) if d in relevant and rng.random() < 0.9 / (1 + pos / 4)]
            results.append(interleaving.credit(merged, clicks))
        out = interleaving.analyze(results)
        assert out.wins_b > 3 * out.wins_a and out.p_value < 1e-6 and out.preference_b > 0.3
        with pytest.raises(ValidationError):
            interleaving.analyze(["a", "c"])


class TestOffPolicy:
    @staticmethod
    def _logs(n: int, seed: int = 0):
        """Contexts with 3 actions, a known reward model, logged by an epsilon-greedy policy."""
        rng = np.random.default_rng(seed)
        x = rng.integers(0, 4, n)  # context
        means = np.array([[0.1, 0.5, 0.3], [0.6, 0.2, 0.3], [0.2, 0.2, 0.7], [0.4, 0.5, 0.1]])
        logging_best = np.array([0, 0, 1, 2])  # a deliberately poor greedy choice per context
        probs = np.full((n, 3), 0.3 / 3)
        probs[np.arange(n), logging_best[x]] += 0.7
        a = np.array([rng.choice(3, p=p) for p in probs])
        r = rng.binomial(1, means[x, a]).astype(float)
        return x, a, r, probs[np.arange(n), a], means

    def test_ips_snips_and_dr_recover_a_known_policy_value(self):
        x, a, r, prop, means = self._logs(60_000)
        target_action = np.argmax(means, axis=1)[x]  # the best policy: its true value is known
        truth = means.max(axis=1).mean()  # contexts are uniform
        target = (a == target_action).astype(float)
        for est in (offpolicy.ips(r, prop, target), offpolicy.snips(r, prop, target)):
            assert est.value == pytest.approx(truth, abs=4 * est.std_error)
            assert abs(est.value - truth) < 0.02
        # a reward model that is biased by +0.1 everywhere: doubly robust still lands on the truth
        q = means + 0.1
        dr = offpolicy.doubly_robust(r, prop, target, q[x, a], q[x, target_action])
        assert abs(dr.value - truth) < 0.02
        assert abs(q[x, target_action].mean() - truth) > 0.09  # the model alone would be off
        # the logging policy's own value is what IPS gives with target = logged propensities
        own = offpolicy.ips(r, prop, prop)
        assert own.value == pytest.approx(r.mean())

    def test_bad_propensities_are_refused(self):
        with pytest.raises(ValidationError, match=r"\(0, 1\]"):
            offpolicy.ips([1.0, 0.0], [0.5, 0.0], [1.0, 1.0])
        with pytest.raises(ValidationError, match="one value per"):
            offpolicy.snips([1.0], [0.5, 0.5], [1.0, 1.0])
