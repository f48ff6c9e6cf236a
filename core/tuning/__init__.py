"""Hyperparameter tuning with Optuna: trials as scheduled jobs, pruning across processes, resumable studies.

Training code reads its parameters with :func:`trial_params`, reports with :func:`report` and stops
early when :func:`should_prune` says so (raise :class:`TrialPruned`).
"""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".runner": ["TuneConfig", "TuneResult", "tune"],
    ".space": ["Param", "SearchSpace", "load_space", "parse_space"],
    ".study": ["list_studies", "param_importances", "study_trials"],
    ".trial": ["TrialPruned", "in_trial", "report", "should_prune", "trial_params"],
})
