"""Hyperparameter tuning with Optuna: trials as scheduled jobs, pruning across processes, resumable studies.

Training code reads its parameters with :func:`trial_params`, reports with :func:`report` and stops
early when :func:`should_prune` says so (raise :class:`TrialPruned`).
"""

from forgeml.tuning.runner import TuneConfig, TuneResult, tune
from forgeml.tuning.space import Param, SearchSpace, load_space, parse_space
from forgeml.tuning.study import list_studies, param_importances, study_trials
from forgeml.tuning.trial import TrialPruned, in_trial, report, should_prune, trial_params

__all__ = ["Param", "SearchSpace", "TrialPruned", "TuneConfig", "TuneResult", "in_trial", "list_studies",
           "load_space", "param_importances", "parse_space", "report", "should_prune", "study_trials",
           "trial_params", "tune"]
