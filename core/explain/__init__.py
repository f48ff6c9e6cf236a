"""Explanations: per-prediction attributions with shap, for any registered model."""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".attributions": ["Attributions", "ModelExplainer", "explain", "explainer_for"],
})
