"""Explanations on the predict path: ``"explain": true`` in a request adds each row's top reasons."""

from __future__ import annotations

from typing import Any

from forgeml.serving.signature import SchemaMismatch
from forgeml.serving.source import ServedModel

DEFAULT_TOP_K = 3
ATTRIBUTION_PREFIX = "_attr_"  # prediction log columns holding each feature's attribution


def requested_top_k(payload: dict[str, Any]) -> int | None:
    """Return how many reasons a request asks for per row, or None when it asks for no explanation."""
    explain = payload.get("explain")
    if explain is None or explain is False:
        return None
    if explain is not True:
        raise SchemaMismatch("explain", "must be true or false")
    top_k = payload.get("top_k", DEFAULT_TOP_K)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 100:
        raise SchemaMismatch("top_k", "must be an integer from 1 to 100")
    return top_k


def explain_columns(served: ServedModel, columns: dict[str, list[Any]], workspace: Any = None) -> Any:
    """Return the attributions of a request's rows (column-wise values, as the model received them)."""
    from forgeml.explain.attributions import explainer_for

    explainer = explainer_for(served.model, workspace)
    return explainer.explain({name: columns[name] for name in explainer.features if name in columns})


INLINE_ROWS = 32  # a tree or linear explanation this small costs less than a hop to a worker thread


def explains_inline(served: ServedModel, rows: int) -> bool:
    """Whether to explain on the event loop: the explainer is built and cheap, and the request small."""
    explainer = getattr(served.model, "_forgeml_explainer", None)
    return explainer is not None and explainer.method in ("tree", "linear") and rows <= INLINE_ROWS
