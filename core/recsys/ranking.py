"""The ranking stage: a registered model scoring every candidate from one batched online-feature lookup."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import ValidationError
from forgeml.recsys.cache import feature_name

__all__ = ["ModelSlot", "RankingModel", "feature_name"]


@dataclass
class RankingModel:
    """One loaded version of the ranking model: what it reads and how to call it."""

    uri: str
    version: int
    model: Any
    inputs: list[str]
    feature_refs: list[str] = field(default_factory=list)

    def score(self, columns: dict[str, Sequence[Any]], rows: int) -> list[float]:
        """Score rows given column-wise in any order; the model gets its signature's inputs in order."""
        import numpy as np
        import pandas as pd

        missing = [c for c in self.inputs if c not in columns]
        if missing:
            raise ValidationError(f"ranking model {self.uri} needs input {missing[0]!r}, which neither its features "
                                  f"nor the request context give")
        frame = self._matrix(columns)
        if frame is None:
            frame = pd.DataFrame({c: columns[c] for c in self.inputs}) if self.inputs else pd.DataFrame(columns)
        inner = getattr(self.model, "model", None)
        if inner is not None and hasattr(inner, "predict_proba") and hasattr(self.model, "predict_proba"):
            # a classifier ranks by the probability of the positive class, not by its 0/1 label
            out = np.asarray(self.model.predict_proba(frame))
            out = out[:, -1] if out.ndim == 2 else out
        else:
            out = np.asarray(self.model.predict(frame), dtype=np.float64)
            if out.ndim == 2:
                out = out[:, -1]
        if len(out) != rows:
            raise ValidationError(f"ranking model {self.uri} returned {len(out)} scores for {rows} candidates")
        return np.asarray(out, dtype=np.float64).tolist()  # Python floats, converted in C

    def _matrix(self, columns: dict[str, Sequence[Any]]) -> Any:
        """Return the inputs as a float matrix when the model takes one in signature order, else None.

        Building a DataFrame of hundreds of rows costs more than scoring them; a model whose loader
        names ``matrix_columns`` takes the plain array and gives the same scores.
        """
        import numpy as np

        if not self.inputs or getattr(self.model, "matrix_columns", None) != self.inputs:
            return None
        try:
            return np.column_stack([np.asarray(columns[c], dtype=np.float64) for c in self.inputs])
        except (TypeError, ValueError):  # text or mixed values: the DataFrame path encodes them
            return None


class ModelSlot:
    """Follows a model URI: loads the version it points at, and swaps in a new one only once it is loaded."""

    def __init__(self, uri: str, workspace: Any):
        self.uri = uri
        self.workspace = workspace
        self.current: RankingModel | None = None
        self._lock = threading.Lock()

    def version_now(self) -> int:
        """Return the version the URI points at in the registry now."""
        from forgeml.registry import resolve

        return int(resolve(self.uri, workspace=self.workspace).version)

    def load(self) -> RankingModel:
        """Load the version the URI points at and make it current (the previous one serves until then)."""
        from forgeml.registry import load_model, resolve

        mv = resolve(self.uri, workspace=self.workspace)
        model = load_model(mv, workspace=self.workspace)
        inputs = [str(c["name"]) for c in (mv.signature or {}).get("inputs", [])]
        loaded = RankingModel(self.uri, int(mv.version), model, inputs, [str(r) for r in mv.feature_views or []])
        with self._lock:
            self.current = loaded
        return loaded

    def poll(self) -> bool:
        """Load a new version when the URI moved; return whether it swapped."""
        current = self.current
        if current is not None and self.version_now() == current.version:
            return False
        self.load()
        return True
