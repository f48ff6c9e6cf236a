"""Run a study: each trial a scheduler job on a free GPU (or CPU slot), pruned across processes, resumable."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import ValidationError
from forgeml.layers import DEFAULT_TARGET
from forgeml.tuning.space import SearchSpace
from forgeml.tuning.study import (
    PRUNERS,
    SAMPLERS,
    env_for_trial,
    make_pruner,
    make_sampler,
    prune_flag,
    report_file,
    storage,
)
from forgeml.tuning.trial import DECIDED_SUFFIX, INTERMEDIATE

log = logging.getLogger("forgeml.tuning")


@dataclass
class TuneConfig:
    """What to tune and how."""

    script: str
    space: SearchSpace
    trials: int = 20
    parallel: str | int = "auto"
    sampler: str = "tpe"
    pruner: str = "asha"
    metric: str = "val_loss"
    direction: str = "minimize"
    timeout_s: float | None = None
    study_name: str | None = None
    resume: bool = False
    seed: int | None = None
    args: list[str] = field(default_factory=list)
    gpus_per_trial: int = 0
    experiment: str = "tuning"
    target: str = DEFAULT_TARGET
    env: dict[str, str] = field(default_factory=dict)
    pruner_settings: dict[str, Any] = field(default_factory=dict)
    final_run: bool = False
    register_as: str | None = None
    model_artifact: str = "model"
    flavor: str | None = None
    poll_s: float | None = None
    report_s: float | None = None
    # more register_model keywords for the final model: input_example, datasets, feature_views, entity_keys, ...
    register_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TuneResult:
    """How a study ended."""

    study: str
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    complete: int
    pruned: int
    failed: int
    study_run_id: str | None
    elapsed_s: float
    final_job_id: str | None = None
    model_version: int | None = None


def _validate(config: TuneConfig) -> None:
    if config.sampler not in SAMPLERS:
        make_sampler(config.sampler)
    if config.pruner not in PRUNERS:
        make_pruner(config.pruner)
    if config.direction not in ("minimize", "maximize"):
        raise ValidationError(f"--direction must be minimize or maximize, got {config.direction!r}")
    if config.trials < 1:
        raise ValidationError("--trials must be at least 1")
    if config.parallel != "auto":
        parallelism(None, config)  # a bad number fails here, before the study exists
    if config.register_as and not config.final_run:
        raise ValidationError("--register names the model of the final run; add --final-run to train it")
    if not os.path.isfile(config.script):
        raise ValidationError(f"training script {config.script!r} does not exist")


def parallelism(ws: Any, config: TuneConfig) -> int:
    """How many trials run at once: one per free GPU (or CPU core) for auto, else the number given."""
    if config.parallel != "auto":
        try:
            value = int(config.parallel)
        except (TypeError, ValueError):
            raise ValidationError(f"--parallel must be auto or a positive number, got {config.parallel!r}") from None
        if value < 1:
            raise ValidationError("--parallel must be auto or a positive number")
        return value
    gpus = ws.gpu_inventory.devices() if ws.executor(config.target).places_gpus else []
    if gpus:
        return max(1, len(gpus) // max(1, config.gpus_per_trial or 1))
    return max(1, os.cpu_count() or 1)


def tune(config: TuneConfig, workspace: Any = None,
         progress: Callable[[int, int, int], None] | None = None) -> TuneResult:
    """Run (or resume) a study to completion and return its best trial.

    ``progress(done, total, running)`` hears each change in how many trials have ended and are running.
    """
    import optuna

    from forgeml import jobs
    from forgeml.tracking import create_run, finish_run, get_run

    ws = workspace
    if ws is None:
        from forgeml.workspace import current

        ws = current()
    _validate(config)
    settings = ws.config.section("tuning")
    if config.poll_s is None:
        config.poll_s = settings.poll_interval_s
    if config.report_s is None:
        config.report_s = settings.report_interval_s
    started = time.monotonic()
    name = config.study_name or f"{os.path.splitext(os.path.basename(config.script))[0]}-{int(time.time())}"
    sampler = make_sampler(config.sampler, config.seed, config.space.grid() if config.sampler == "grid" else None)
    pruner = make_pruner(config.pruner, config.pruner_settings)
    store = storage(ws)
    existing = {s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)}
    if name in existing and not config.resume:
        raise ValidationError(f"study {name!r} already exists; pass --resume to continue it or choose another name")
    study = optuna.create_study(study_name=name, storage=store, sampler=sampler, pruner=pruner,
                                direction=config.direction, load_if_exists=config.resume)
    if study.user_attrs.get("run_id"):
        study_run = study.user_attrs["run_id"]
    else:
        study_run = create_run(name=name, experiment=config.experiment, tags={"forgeml.study": name},
                               params={"sampler": config.sampler, "pruner": config.pruner, "trials": config.trials},
                               workspace=ws).id
        for key, value in {"run_id": study_run, "metric": config.metric, "script": config.script,
                           "pruner": config.pruner, "pruner_settings": config.pruner_settings}.items():
            study.set_user_attr(key, value)
    width = parallelism(ws, config)
    scheduler = _ensure_scheduler(ws)
    in_flight: dict[int, tuple[Any, str]] = {}
    told = (-1, -1)
    try:
        _adopt(study, in_flight, ws)
        while True:
            _collect(study, in_flight, config, ws, get_run)
            finished = _counted(study)
            timed_out = config.timeout_s is not None and time.monotonic() - started > config.timeout_s
            while not timed_out and len(in_flight) < width and finished + len(in_flight) < config.trials:
                trial = study.ask()
                params = config.space.sample(trial)
                flag = prune_flag(ws, name, trial.number)
                for stale in (flag, flag.with_name(flag.name + DECIDED_SUFFIX), report_file(ws, name, trial.number)):
                    stale.unlink(missing_ok=True)  # left by an earlier study of the same name
                spec = jobs.JobSpec(script=config.script, args=list(config.args), params=params,
                                    name=f"{name}-trial-{trial.number}", gpus=config.gpus_per_trial,
                                    experiment=config.experiment, parent_run=study_run, target=config.target,
                                    env={**config.env, **env_for_trial(ws, name, trial.number, ws.executor(config.target).beside_workspace)})
                job = jobs.submit(spec, workspace=ws)
                trial.set_user_attr("job_id", job.id)
                trial.set_user_attr("run_id", job.run_id)
                in_flight[trial.number] = (trial, job.id)
            if progress is not None and (finished, len(in_flight)) != told:
                told = (finished, len(in_flight))
                progress(finished, config.trials, len(in_flight))
            if not in_flight:
                break
            time.sleep(config.poll_s)
    finally:
        if scheduler is not None:
            scheduler.stop()
    result = _result(study, study_run, time.monotonic() - started)
    finish_run(study_run, "FINISHED", workspace=ws)
    if config.final_run and result.best_trial is not None:
        _final(config, result, ws, name, study_run)
    return result


def _ensure_scheduler(ws: Any) -> Any:
    """Start an in-process scheduler when none serves this workspace; return it so it can be stopped."""
    from forgeml.jobs.wake import SchedulerLock

    if SchedulerLock(ws).holder() is not None:
        return None
    from forgeml.jobs import Scheduler

    return Scheduler(ws).start_in_thread()


def _adopt(study: Any, in_flight: dict[int, tuple[Any, str]], ws: Any) -> None:
    """On resume, keep following trials whose jobs were submitted; fail the ones that never got a job."""
    import optuna

    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        job_id = t.user_attrs.get("job_id")
        if job_id:
            in_flight[t.number] = (optuna.trial.Trial(study, t._trial_id), job_id)
        else:
            # marked before it is told: a finished trial can no longer take attributes
            study._storage.set_trial_system_attr(t._trial_id, "forgeml_not_started", True)
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)


_relayed: dict[str, float] = {}


def _collect(study: Any, in_flight: dict[int, tuple[Any, str]], config: TuneConfig, ws: Any, get_run: Any) -> None:
    """Tell the study about every trial whose job ended."""
    import optuna

    from forgeml import jobs

    if not in_flight:
        return
    from forgeml.jobs.queue import TERMINAL, jobs_store
    from forgeml.jobs.store import states as job_states

    # one cheap query per poll decides which trials need work; reports are relayed at most every report_s
    ids = [job_id for _trial, job_id in in_flight.values()]
    states = job_states(jobs_store(ws), ids)
    now = time.monotonic()
    for number, (trial, job_id) in list(in_flight.items()):
        state = states.get(job_id)
        ended = state in TERMINAL
        if not ended and (state == jobs.PENDING or not _reports_due(ws, study.study_name, number, job_id, config, now)):
            continue
        _relayed[job_id] = now
        job = jobs.get_job(job_id, ws)
        _relay_reports(study, trial, job, ws, local=ws.executor(config.target).beside_workspace)
        if not job.done:
            continue
        _relayed.pop(job_id, None)
        _report_offsets.pop(job_id, None)
        del in_flight[number]
        frozen = study._storage.get_trial(trial._trial_id)
        if frozen.user_attrs.get("pruned"):
            study.tell(number, state=optuna.trial.TrialState.PRUNED)
            continue
        value = None
        if job.state == jobs.SUCCEEDED:
            if job.run_id:
                value = get_run(job.run_id, workspace=ws).metrics.get(config.metric)
            if value is None and frozen.intermediate_values:
                value = frozen.intermediate_values[max(frozen.intermediate_values)]
        if value is None or value != value:
            study.tell(number, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(number, float(value))


def _relay_reports(study: Any, trial: Any, job: Any, ws: Any, local: bool = True) -> None:
    """Feed a trial's new intermediate values to the pruner; raise its flag when the pruner says stop."""
    if not job.run_id or job.state == "PENDING":
        return
    frozen = study._storage.get_trial(trial._trial_id)
    if frozen.state.is_finished() or frozen.user_attrs.get("pruned"):
        return
    seen = frozen.intermediate_values
    path = report_file(ws, study.study_name, trial.number)
    if local:
        if not path.exists():  # no report yet
            return
        fresh = _read_reports(path, job.id, seen)
        if fresh:
            from forgeml.tracking.store import tracking_store

            store = tracking_store(ws)
            seq = store.seq(job.run_id)
            store.write_points([(seq, INTERMEDIATE, step, ts, value) for step, value, ts in fresh])
    else:
        from forgeml.tracking import get_metric_history

        history = get_metric_history(job.run_id, INTERMEDIATE, workspace=ws)
        fresh = [(int(s), float(v), 0.0) for s, v in zip(history["step"], history["value"]) if int(s) not in seen]
    if not fresh:
        return
    for step, value, _ts in fresh:
        trial.report(value, step)
    flag = prune_flag(ws, study.study_name, trial.number)
    if trial.should_prune():
        trial.set_user_attr("pruned", True)
        flag.touch()
    if local:
        _write_decided(flag, max(step for step, _value, _ts in fresh))


def _reports_due(ws: Any, study_name: str, number: int, job_id: str, config: TuneConfig, now: float) -> bool:
    """Whether a running trial's reports should go to the pruner now.

    A trial beside the workspace has its new reports relayed at the next poll (a trial may be waiting for the verdict);
    a remote trial's come from its tracking run, read at most every report_s.
    """
    if ws.executor(config.target).beside_workspace:
        try:
            size = os.stat(report_file(ws, study_name, number)).st_size
        except FileNotFoundError:
            return False
        return size > _report_offsets.get(job_id, 0)
    return now - _relayed.get(job_id, 0.0) >= config.report_s


def _write_decided(flag: Any, step: int) -> None:
    """Tell the trial which step the pruner has ruled on (replaced whole, so a reader never sees half)."""
    decided = str(flag) + DECIDED_SUFFIX
    with open(decided + ".tmp", "w") as f:
        f.write(str(step))
    os.replace(decided + ".tmp", decided)


_report_offsets: dict[str, int] = {}


def _read_reports(path: Any, job_id: str, seen: Any) -> list[tuple[int, float, float]]:
    """Return the (step, value, time) lines appended since the last read, skipping steps already told."""
    start = _report_offsets.get(job_id, 0)
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    # a line still being written has no newline yet: leave it for the next read
    end = data.rfind(b"\n") + 1
    _report_offsets[job_id] = start + end
    fresh: dict[int, tuple[int, float, float]] = {}
    for line in data[:end].splitlines():
        try:
            step, value, ts = json.loads(line)
            step, value, ts = int(step), float(value), float(ts)
        except (ValueError, TypeError):
            log.warning("trial report file %s: skipped a line that is not [step, value, time]: %r", path, line[:80])
            continue
        if step not in seen:
            fresh[step] = (step, value, ts)
    return list(fresh.values())


def _counted(study: Any) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return sum(1 for t in study.get_trials(deepcopy=False, states=states)
               if not t.system_attrs.get("forgeml_not_started"))


def _result(study: Any, study_run: str | None, elapsed: float) -> TuneResult:
    import optuna

    trials = study.get_trials(deepcopy=False)
    count = {s: sum(1 for t in trials if t.state == s) for s in optuna.trial.TrialState}
    complete = count[optuna.trial.TrialState.COMPLETE]
    best = study.best_trial if complete else None
    return TuneResult(study.study_name, None if best is None else best.value, {} if best is None else best.params,
                      None if best is None else best.number, complete, count[optuna.trial.TrialState.PRUNED],
                      sum(1 for t in trials if t.state == optuna.trial.TrialState.FAIL
                          and not t.system_attrs.get("forgeml_not_started")), study_run, elapsed)


def _final(config: TuneConfig, result: TuneResult, ws: Any, name: str, study_run: str | None) -> None:
    """Train once more with the best parameters and register what it saved as a STAGING version."""
    from pathlib import Path

    from forgeml import jobs
    from forgeml.errors import JobError
    from forgeml.tracking import download_artifacts

    spec = jobs.JobSpec(script=config.script, args=list(config.args), params=result.best_params,
                        name=f"{name}-final", gpus=config.gpus_per_trial, experiment=config.experiment,
                        parent_run=study_run, target=config.target, env={**config.env, "FORGEML_FINAL": "1"})
    job = jobs.submit(spec, workspace=ws)
    scheduler = _ensure_scheduler(ws)
    try:
        job = jobs.wait(job.id, workspace=ws)
    finally:
        if scheduler is not None:
            scheduler.stop()
    result.final_job_id = job.id
    if job.state != jobs.SUCCEEDED:
        raise JobError(f"the final run (job {job.id}) ended {job.state}: {job.reason}")
    if config.register_as and job.run_id:
        from forgeml.registry import register_model

        dest = ws.dot / "tuning" / "final" / job.id
        download_artifacts(job.run_id, dest, path=config.model_artifact, workspace=ws)
        found = sorted(Path(dest).rglob("*"))
        files = [p for p in found if p.is_file()]
        if not files:
            raise JobError(f"the final run logged no artifact named {config.model_artifact!r} to register")
        path = files[0] if len(files) == 1 else Path(dest) / config.model_artifact
        options = {"params": result.best_params, "tags": {"forgeml.study": name},
                   "metrics": {} if result.best_value is None else {config.metric: result.best_value},
                   **config.register_options}
        mv = register_model(config.register_as, path=path, flavor=config.flavor, run_id=job.run_id, workspace=ws,
                            **options)
        result.model_version = mv.version
