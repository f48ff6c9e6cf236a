"""A two-tower retrieval model in torch: a user tower and an item tower trained so that dot products rank interactions.

Trained with in-batch sampled softmax (every other item of a batch is a negative), the usual recipe for
retrieval towers. The item tower adds a category embedding to the item's own, so items share what
their category teaches. Vectors are L2-normalized, so the vector store's l2 distance ranks as cosine.
It lives in an importable module so the registry's torch runtime can unpickle it in any process.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TwoTower(nn.Module):
    """User and item embedding towers; ``forward`` scores (user, item) rows given as a 2-column tensor."""

    def __init__(self, n_users: int, n_items: int, n_categories: int, item_category: torch.Tensor, dim: int = 32):
        super().__init__()
        self.users = nn.Embedding(n_users, dim)
        self.items = nn.Embedding(n_items, dim)
        self.categories = nn.Embedding(n_categories, dim)
        self.register_buffer("item_category", item_category.long())
        for table in (self.users, self.items, self.categories):
            nn.init.normal_(table.weight, std=0.1)

    def user_vectors(self, users: torch.Tensor | None = None) -> torch.Tensor:
        """Return normalized user vectors (all users when none are given)."""
        w = self.users.weight if users is None else self.users(users)
        return nn.functional.normalize(w, dim=-1)

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """Return normalized item vectors (all items when none are given)."""
        if items is None:
            items = torch.arange(self.items.num_embeddings, device=self.items.weight.device)
        return nn.functional.normalize(self.items(items) + self.categories(self.item_category[items]), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score rows of (user, item): the cosine of their vectors."""
        x = x.long()
        return (self.user_vectors(x[:, 0]) * self.item_vectors(x[:, 1])).sum(-1)


def train_two_tower(users: Any, items: Any, n_users: int, n_items: int, item_category: Any, dim: int = 32,
                    epochs: int = 4, batch_size: int = 512, lr: float = 0.02, temperature: float = 0.1,
                    seed: int = 0) -> TwoTower:
    """Fit the towers on (user, item) interaction pairs; return the model in eval mode on the CPU."""
    import numpy as np

    torch.manual_seed(seed)
    categories = torch.as_tensor(np.array(item_category), dtype=torch.long)
    model = TwoTower(n_users, n_items, int(categories.max()) + 1, categories, dim)
    u = torch.as_tensor(np.array(users), dtype=torch.long)
    i = torch.as_tensor(np.array(items), dtype=torch.long)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(u), generator=generator)
        for start in range(0, len(u), batch_size):
            batch = order[start:start + batch_size]
            logits = model.user_vectors(u[batch]) @ model.item_vectors(i[batch]).T / temperature
            # the same item twice in a batch is not a negative of itself
            same = i[batch][:, None] == i[batch][None, :]
            logits = logits.masked_fill(same & ~torch.eye(len(batch), dtype=torch.bool), float("-inf"))
            loss = nn.functional.cross_entropy(logits, torch.arange(len(batch)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def tower_outputs(model: TwoTower) -> tuple[Any, Any]:
    """Return (user vectors, item vectors) as float32 numpy arrays."""
    with torch.no_grad():
        return model.user_vectors().numpy().astype("float32"), model.item_vectors().numpy().astype("float32")
