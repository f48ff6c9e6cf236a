"""Explanations: per-prediction attributions (shap), background samples, batch explanation."""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".attributions": ["Attributions", "ModelExplainer", "explain", "explainer_for"],
    ".background": ["read_background", "write_background"],
    ".batch": ["BatchExplanationResult", "explain_batch"],
    ".drift": ["attribute_shift", "explain_alert"],
})
