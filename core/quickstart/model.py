"""The quickstart's fraud model: a small MLP that carries its own input scaling, saved as a torch module.

It lives in an importable module (not in the training script) so any process can unpickle it: the
tuning trials, the registry's torch runtime and the model server.
"""

from __future__ import annotations

import torch
from torch import nn


class FraudNet(nn.Module):
    """log1p, standardize with the training set's statistics, then an MLP ending in a fraud probability."""

    def __init__(self, n_inputs: int, hidden: int = 32, mean: torch.Tensor | None = None,
                 std: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("mean", mean if mean is not None else torch.zeros(n_inputs))
        self.register_buffer("std", std if std is not None else torch.ones(n_inputs))
        self.body = nn.Sequential(nn.Linear(n_inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                  nn.Linear(hidden, 1))

    @staticmethod
    def squash(x: torch.Tensor) -> torch.Tensor:
        """Compress heavy-tailed amounts and counts (all inputs are non-negative)."""
        return torch.log1p(torch.clamp(torch.nan_to_num(x, nan=0.0), min=0.0))

    @classmethod
    def for_data(cls, x: torch.Tensor, hidden: int) -> FraudNet:
        """Build a network whose scaling is fitted on the training inputs x."""
        squashed = cls.squash(x)
        return cls(x.shape[1], hidden, squashed.mean(0), squashed.std(0).clamp(min=1e-6))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Return the raw scores (for a numerically stable loss)."""
        return self.body((self.squash(x) - self.mean) / self.std).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the fraud probability of each row."""
        return torch.sigmoid(self.logits(x))
