"""Experiment arms: holdout, fixed splits, epsilon-greedy and Thompson sampling with logged propensities.

Every decision is made by hashing the routing key into [0, 1) and reading it against the cumulative
allocation, so the same key lands in the same arm while the allocation stands, and the probability of
the arm chosen (its propensity) is known exactly and logged with the prediction. The holdout uses a
hash of its own: a key held out stays held out whatever the bandit does to the other arms.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeml.errors import ConfigError, ValidationError

POLICIES = ("fixed", "epsilon_greedy", "thompson")
HOLDOUT = "holdout"
_SCALE = 18446744073709551616.0


def unit_hash(salt: str, key: str) -> float:
    """Map a key to a stable number in [0, 1) under a salt (one salt per experiment and purpose)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=salt.encode()[:64]).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass
class ArmStats:
    """What the outcomes say about one arm so far: matured decisions, their sum and sum of squares."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    @property
    def mean(self) -> float:
        """The arm's mean reward (0 before any matured decision)."""
        return self.total / self.n if self.n else 0.0


@dataclass
class ArmsConfig:
    """An endpoint's experiment arms and how traffic is allocated among them."""

    arms: list[str]
    policy: str = "fixed"
    weights: list[float] = field(default_factory=list)
    epsilon: float = 0.1
    holdout: float = 0.0
    min_share: float = 0.01
    reward: str = "binary"  # binary: Beta posteriors; continuous: normal posteriors
    seed: int = 0

    def validate(self, where: str) -> None:
        """Raise ConfigError in one line when the arms or the policy cannot work."""
        if len(self.arms) < 1 or len(set(self.arms)) != len(self.arms):
            raise ConfigError(f"{where}: give one or more arms with distinct names, got {self.arms}")
        if HOLDOUT in self.arms:
            raise ConfigError(f"{where}: {HOLDOUT!r} is reserved for the holdout share; name the arm otherwise")
        if self.policy not in POLICIES:
            raise ConfigError(f"{where}: policy {self.policy!r} is not one of {', '.join(POLICIES)}")
        if self.weights and (len(self.weights) != len(self.arms) or any(w < 0 for w in self.weights)
                             or sum(self.weights) <= 0):
            raise ConfigError(f"{where}: weights must be one non-negative number per arm with a positive sum")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ConfigError(f"{where}: epsilon must be between 0 and 1, got {self.epsilon}")
        if not 0.0 <= self.holdout < 1.0:
            raise ConfigError(f"{where}: holdout must be at least 0 and below 1, got {self.holdout}")
        if not 0.0 <= self.min_share * len(self.arms) <= 1.0:
            raise ConfigError(f"{where}: min_share {self.min_share} times {len(self.arms)} arms exceeds 1")
        if self.reward not in ("binary", "continuous"):
            raise ConfigError(f"{where}: reward must be 'binary' or 'continuous', got {self.reward!r}")


def policy_shares(config: ArmsConfig, stats: Mapping[str, ArmStats] | None = None, draws: int = 20_000) -> list[float]:
    """Return each arm's share of the non-holdout traffic under the policy and the outcomes so far (sums to 1)."""
    import numpy as np

    k = len(config.arms)
    stats = stats or {}
    if config.policy == "fixed":
        w = np.asarray(config.weights or [1.0] * k, dtype=np.float64)
        return list(w / w.sum())
    means = np.array([stats.get(a, ArmStats()).mean for a in config.arms])
    if config.policy == "epsilon_greedy":
        shares = np.full(k, config.epsilon / k)
        shares[int(np.argmax(means))] += 1.0 - config.epsilon
        return list(shares)
    # Thompson sampling as probability matching: each arm gets the posterior probability that it is the
    # best, estimated by sampling the posteriors with a fixed seed so every process computes the same split
    rng = np.random.default_rng(config.seed)
    ns = np.array([stats.get(a, ArmStats()).n for a in config.arms], dtype=np.float64)
    if config.reward == "binary":
        succ = np.array([stats.get(a, ArmStats()).total for a in config.arms])
        samples = rng.beta(1.0 + succ, 1.0 + np.maximum(ns - succ, 0.0), size=(draws, k))
    else:
        sq = np.array([stats.get(a, ArmStats()).total_sq for a in config.arms])
        var = np.where(ns > 1, (sq - ns * means ** 2) / np.maximum(ns - 1, 1), 1.0)
        sd = np.sqrt(np.maximum(var, 1e-12) / np.maximum(ns, 1.0))
        samples = rng.normal(means, np.where(ns > 0, sd, 1e6), size=(draws, k))
    best = np.bincount(np.argmax(samples, axis=1), minlength=k) / draws
    # the exploration budget: no arm's share falls below min_share, so its outcomes keep arriving
    floor = config.min_share
    shares = floor + (1.0 - floor * k) * best
    return list(shares / shares.sum())


class Allocator:
    """Assigns routing keys to arms and reports the propensity of each decision; thread-safe, swappable shares."""

    def __init__(self, experiment: str, config: ArmsConfig, shares: Sequence[float] | None = None):
        config.validate(f"experiment {experiment!r}")
        self.experiment = experiment
        self.config = config
        self._holdout_salt = f"{experiment}\x00holdout"
        self._arm_salt = f"{experiment}\x00arms"
        self._lock = threading.Lock()
        self._set(list(shares) if shares is not None else policy_shares(config))

    def _set(self, shares: list[float]) -> None:
        if len(shares) != len(self.config.arms) or any(s < 0 for s in shares) or abs(sum(shares) - 1) > 1e-6:
            raise ValidationError(f"experiment {self.experiment!r}: shares {shares} are not one probability "
                                  f"per arm summing to 1")
        cum, acc = [], 0.0
        for s in shares:
            acc += s
            cum.append(acc)
        cum[-1] = 1.0
        live = 1.0 - self.config.holdout
        # read together by assign(): one tuple swapped at once, never a torn pair
        self._table = (tuple(shares), cum, tuple(s * live for s in shares))

    @property
    def shares(self) -> list[float]:
        """Each arm's share of the non-holdout traffic now."""
        return list(self._table[0])

    def update(self, stats: Mapping[str, ArmStats]) -> list[float]:
        """Recompute the shares from the outcomes so far (bandit policies) and install them."""
        shares = policy_shares(self.config, stats)
        with self._lock:
            self._set(shares)
        return shares

    def set_shares(self, shares: Sequence[float]) -> None:
        """Install shares computed elsewhere (another process analysed the outcomes)."""
        with self._lock:
            self._set(list(shares))

    def propensities(self) -> dict[str, float]:
        """Return the probability of every arm, the holdout included; they sum to 1."""
        out = {HOLDOUT: self.config.holdout} if self.config.holdout > 0 else {}
        out.update(zip(self.config.arms, self._table[2], strict=True))
        return out

    def assign(self, key: str) -> tuple[str, float]:
        """Return the arm that serves this routing key and the probability with which it was chosen."""
        holdout = self.config.holdout
        if holdout > 0 and unit_hash(self._holdout_salt, key) < holdout:
            return HOLDOUT, holdout
        _, cum, probs = self._table
        i = bisect.bisect_right(cum, unit_hash(self._arm_salt, key))
        i = min(i, len(probs) - 1)
        return self.config.arms[i], probs[i]


# ---------------------------------------------------------------- shares shared between processes
def shares_path(workspace_dot: str | Path, endpoint: str) -> Path:
    """Return the file where an experiment's latest shares for an endpoint are kept."""
    from forgeml.paths import safe_component

    return Path(workspace_dot) / "experiments" / "shares" / f"{safe_component(endpoint, 'endpoint name')}.json"


def write_shares(workspace_dot: str | Path, endpoint: str, experiment: str, arms: Sequence[str],
                 shares: Sequence[float], layout: Mapping[str, Any] | None = None) -> Path:
    """Write an experiment's shares (and, from its start, the arms' layout) atomically for serving to poll.

    ``layout`` holds what serving needs to route: ``uris`` per arm, ``holdout``, ``holdout_model``,
    ``holdout_constant`` and ``status`` (running or stopped); a later call without it keeps the last one.
    """
    path = shares_path(workspace_dot, endpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = read_layout(workspace_dot, endpoint) or {}
    doc = {**(previous if previous.get("experiment") == experiment else {}), **(layout or {}),
           "experiment": experiment, "arms": list(arms), "shares": list(shares)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)
    return path


def read_layout(workspace_dot: str | Path, endpoint: str) -> dict[str, Any] | None:
    """Return the experiment file of an endpoint as written, or None (none, or unreadable)."""
    try:
        doc = json.loads(shares_path(workspace_dot, endpoint).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def read_shares(workspace_dot: str | Path, endpoint: str, experiment: str, arms: Sequence[str]) -> list[float] | None:
    """Return the shares written for this experiment and these arms, or None (none yet, or another layout)."""
    doc = read_layout(workspace_dot, endpoint)
    if doc is None or doc.get("experiment") != experiment or doc.get("arms") != list(arms):
        return None
    shares = doc.get("shares")
    return [float(s) for s in shares] if isinstance(shares, list) else None
