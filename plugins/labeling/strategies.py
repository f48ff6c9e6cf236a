"""Active-learning query strategies: which unlabelled items to ask people about next.

Uncertainty strategies score every row from its class probabilities and take the n most uncertain
(ties broken by row order, so the answer is the same for the same input). ``diverse`` spreads a batch
out: from the most uncertain candidates (``candidates`` per wanted item) it picks greedily the one
farthest from those already picked (k-center), in the embedding space when one is given, else in
probability space. Every strategy is linear in the pool size, so a million rows take a second or so.
"""

from __future__ import annotations

from typing import Any

from forgeml.errors import ValidationError


def _check(probabilities: Any, n: int, embeddings: Any) -> Any:
    import numpy as np

    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 2:
        raise ValidationError(f"probabilities must be rows x classes, got shape {p.shape}")
    if embeddings is not None and len(embeddings) != len(p):
        raise ValidationError(f"embeddings have {len(embeddings)} rows but probabilities {len(p)}")
    if n < 0:
        raise ValidationError(f"the batch size must be >= 0, got {n}")
    if not np.isfinite(p).all():
        raise ValidationError("probabilities must be finite numbers")
    return p


def top_n(score: Any, n: int) -> list[int]:
    """Indices of the n highest scores, highest first, ties by lower index."""
    import numpy as np

    n = min(n, len(score))
    if n == 0:
        return []
    cut = -np.partition(-score, n - 1)[n - 1]  # the n-th highest score, found in linear time
    # every row above the cut, then the lowest-indexed rows at the cut, so ties never depend on the partition
    above = np.nonzero(score > cut)[0]
    tied = np.nonzero(score == cut)[0][: n - len(above)]
    chosen = np.concatenate([above, tied])
    order = np.lexsort((chosen, -score[chosen]))
    return [int(i) for i in chosen[order]]


def least_confidence_scores(p: Any) -> Any:
    """1 - the top class probability."""
    return 1.0 - p.max(axis=1)


def margin_scores(p: Any) -> Any:
    """Minus the gap between the two most likely classes (higher is more uncertain)."""
    import numpy as np

    two = -np.partition(-p, 1, axis=1)[:, :2]
    return -(two[:, 0] - two[:, 1])


def entropy_scores(p: Any) -> Any:
    """Shannon entropy of the class probabilities."""
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=1)


class UncertaintyStrategy:
    """Takes the n rows with the highest uncertainty score."""

    name = "uncertainty"
    scores = staticmethod(margin_scores)

    def __init__(self, settings: Any = None, workspace: Any = None):
        pass

    def select(self, probabilities: Any, n: int, embeddings: Any = None, seed: int = 0) -> list[int]:
        """Return the n most uncertain rows, most uncertain first."""
        p = _check(probabilities, n, embeddings)
        return top_n(type(self).scores(p), n)


class LeastConfidence(UncertaintyStrategy):
    """Rows whose most likely class is least likely."""

    name = "least_confidence"
    scores = staticmethod(least_confidence_scores)


class Margin(UncertaintyStrategy):
    """Rows whose two most likely classes are closest."""

    name = "margin"
    scores = staticmethod(margin_scores)


class Entropy(UncertaintyStrategy):
    """Rows whose class distribution has the highest entropy."""

    name = "entropy"
    scores = staticmethod(entropy_scores)


class RandomSampling:
    """Uniformly random rows: the baseline every other strategy is measured against."""

    name = "random"

    def __init__(self, settings: Any = None, workspace: Any = None):
        pass

    def select(self, probabilities: Any, n: int, embeddings: Any = None, seed: int = 0) -> list[int]:
        """Return n random rows (the same for the same seed)."""
        import numpy as np

        p = _check(probabilities, n, embeddings)
        return [int(i) for i in np.random.default_rng(seed).choice(len(p), size=min(n, len(p)), replace=False)]


class Diverse:
    """Margin-uncertain candidates, then greedy k-center so the batch covers different regions."""

    name = "diverse"
    candidates = 10

    def __init__(self, settings: Any = None, workspace: Any = None):
        pass

    def select(self, probabilities: Any, n: int, embeddings: Any = None, seed: int = 0) -> list[int]:
        """Return n rows: the most uncertain first, then each the farthest from those already chosen."""
        import numpy as np

        p = _check(probabilities, n, embeddings)
        n = min(n, len(p))
        if n == 0:
            return []
        pool = np.asarray(top_n(margin_scores(p), min(len(p), n * self.candidates)), dtype=np.int64)
        space = np.asarray(embeddings, dtype=float)[pool] if embeddings is not None else p[pool]
        if space.ndim != 2 or not np.isfinite(space).all():
            raise ValidationError("embeddings must be finite vectors of one length")
        chosen = [0]  # pool is ordered most uncertain first
        nearest = np.linalg.norm(space - space[0], axis=1)
        nearest[0] = -np.inf
        for _ in range(1, n):
            nxt = int(np.argmax(nearest))  # argmax takes the first (most uncertain) of equally far rows
            chosen.append(nxt)
            nearest = np.minimum(nearest, np.linalg.norm(space - space[nxt], axis=1))
            nearest[chosen] = -np.inf  # duplicates of a chosen row stay eligible, the row itself does not
        return [int(pool[i]) for i in chosen]


STRATEGIES: dict[str, tuple[type, str]] = {
    "least_confidence": (LeastConfidence, "rows whose most likely class is least likely"),
    "margin": (Margin, "rows whose two most likely classes are closest"),
    "entropy": (Entropy, "rows with the most spread-out class probabilities"),
    "diverse": (Diverse, "uncertain rows spread out by k-center over embeddings"),
    "random": (RandomSampling, "uniformly random rows (the baseline)"),
}
