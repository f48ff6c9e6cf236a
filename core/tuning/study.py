"""Studies in the workspace: Optuna's journal storage (safe for many processes), samplers, pruners, reading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forgeml.errors import ValidationError, unknown_name
from forgeml.tuning.trial import REPORTS_ENV

SAMPLERS = ("tpe", "random", "grid", "cmaes", "qmc")
PRUNERS = ("asha", "hyperband", "median", "none")


def storage_path(ws: Any) -> Path:
    """Where the workspace's studies live."""
    path = ws.dot / "tuning"
    path.mkdir(parents=True, exist_ok=True)
    return path / "studies.journal"


def storage(ws_or_path: Any) -> Any:
    """Open the journal storage: an append-only log with file locks, safe for many processes."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = str(ws_or_path if isinstance(ws_or_path, str | Path) else storage_path(ws_or_path))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # a writer holds the lock for one append (milliseconds); a killed tuner's stale lock is broken after 5 s
    lock = JournalFileOpenLock(path, grace_period=5)
    return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=lock))


def make_sampler(name: str, seed: int | None = None, grid: dict[str, list[Any]] | None = None) -> Any:
    """Build an Optuna sampler by name."""
    import optuna

    if name not in SAMPLERS:
        raise unknown_name("sampler", name, SAMPLERS, "--sampler")
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(grid or {}, seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    return optuna.samplers.QMCSampler(seed=seed)


# the settings each pruner takes, named as Optuna names them
PRUNER_SETTINGS = {
    "asha": ("min_resource", "reduction_factor"),
    "hyperband": ("min_resource", "max_resource", "reduction_factor"),
    "median": ("n_startup_trials", "n_warmup_steps"),
    "none": (),
}


def make_pruner(name: str, settings: dict[str, Any] | None = None) -> Any:
    """Build an Optuna pruner by name (ASHA is successive halving); a setting it does not take is an error."""
    import optuna

    s = {k: v for k, v in (settings or {}).items() if v is not None}
    if name not in PRUNERS:
        raise unknown_name("pruner", name, PRUNERS, "--pruner")
    extra = sorted(set(s) - set(PRUNER_SETTINGS[name]))
    if extra:
        takes = ", ".join(PRUNER_SETTINGS[name]) or "no settings"
        raise ValidationError(f"the {name} pruner does not take {', '.join(extra)}; it takes {takes}")
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=s.get("min_resource", 1),
                                                      reduction_factor=s.get("reduction_factor", 3))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=s.get("min_resource", 1),
                                              max_resource=s.get("max_resource", "auto"),
                                              reduction_factor=s.get("reduction_factor", 3))
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=s.get("n_startup_trials", 3),
                                           n_warmup_steps=s.get("n_warmup_steps", 0))
    return optuna.pruners.NopPruner()


def load(ws: Any, name: str, pruner: Any = None) -> Any:
    """Load a stored study by name, with its recorded pruner unless one is given."""
    import optuna

    store = storage(ws)
    names = [s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)]
    if name not in names:
        raise unknown_name("study", name, names, "tune")
    study = optuna.load_study(study_name=name, storage=store, pruner=optuna.pruners.NopPruner())
    if pruner is None:
        attrs = study.user_attrs
        pruner = make_pruner(attrs.get("pruner", "none"), attrs.get("pruner_settings"))
    study.pruner = pruner
    return study


def _workspace(workspace: Any) -> Any:
    if workspace is not None:
        return workspace
    from forgeml.workspace import current

    return current()


def list_studies(workspace: Any = None) -> list[dict[str, Any]]:
    """Return every study: name, direction, trial count, best value and parameters."""
    import optuna

    ws = _workspace(workspace)
    if not storage_path(ws).exists():
        return []
    out = []
    for s in optuna.get_all_study_summaries(storage(ws), include_best_trial=True):
        best = s.best_trial
        out.append({"name": s.study_name, "direction": s.direction.name.lower(), "n_trials": s.n_trials,
                    "best_value": None if best is None else best.value,
                    "best_params": "" if best is None else json.dumps(best.params, sort_keys=True),
                    "metric": s.user_attrs.get("metric", "")})
    return out


def study_trials(name: str, workspace: Any = None) -> Any:
    """Return a study's trials as a DataFrame: number, state, value, params, job and run ids, duration."""
    import pandas as pd

    study = load(_workspace(workspace), name)
    rows = []
    for t in study.get_trials(deepcopy=False):
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and \
            t.datetime_start else None
        rows.append({"number": t.number, "state": t.state.name, "value": t.value,
                     "last_step": t.last_step, "duration_s": duration,
                     "job_id": t.user_attrs.get("job_id"), "run_id": t.user_attrs.get("run_id"),
                     **{f"params.{k}": v for k, v in t.params.items()}})
    return pd.DataFrame(rows, columns=None if rows else ["number", "state", "value", "last_step", "duration_s",
                                                         "job_id", "run_id"])


def param_importances(name: str, workspace: Any = None) -> dict[str, float]:
    """Return each parameter's importance (fANOVA) over the completed trials."""
    import optuna

    study = load(_workspace(workspace), name)
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < 2:
        raise ValidationError(f"study {name!r} needs at least two completed trials for importances")
    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError) as e:
        raise ValidationError(f"study {name!r}: importances unavailable ({e})") from e


def prune_flag(ws: Any, study_name: str, number: int) -> Path:
    """The file whose existence tells a trial's process that the pruner stopped it."""
    folder = ws.dot / "tuning" / "prune" / study_name
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{number}.flag"


def report_file(ws: Any, study_name: str, number: int) -> Path:
    """The file a local trial appends its intermediate values to, one JSON line each."""
    return prune_flag(ws, study_name, number).with_suffix(".reports")


def env_for_trial(ws: Any, study_name: str, number: int, local: bool = True) -> dict[str, str]:
    """The environment that tells training code it is a trial, where to report and where pruning appears."""
    env = {
        "FORGEML_STUDY": study_name,
        "FORGEML_TRIAL_NUMBER": str(number),
        "FORGEML_PRUNE_FLAG": str(prune_flag(ws, study_name, number)),
    }
    if local:
        env[REPORTS_ENV] = str(report_file(ws, study_name, number))
    return env
