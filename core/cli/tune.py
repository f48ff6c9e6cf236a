"""`forgeml tune`: run a study whose trials are scheduler jobs; `tune ls` and `tune show STUDY` read it back."""

from __future__ import annotations

import json

import click
from click_default_group import DefaultGroup

from forgeml.cli.output import emit_json, print_table
from forgeml.layers import DEFAULT_TARGET

PRUNER_OPTIONS = ("n_startup_trials", "n_warmup_steps", "min_resource", "reduction_factor")


@click.group("tune", cls=DefaultGroup, default="run", default_if_no_args=False)
def tune_group() -> None:
    """Tune hyperparameters: `forgeml tune train.py --space space.toml ...`, `tune ls`, `tune show STUDY`."""


@tune_group.command("run")
@click.argument("script", type=click.Path(dir_okay=False))
@click.argument("args", nargs=-1)
@click.option("--space", "space_file", required=True, type=click.Path(dir_okay=False), help="Search-space TOML.")
@click.option("--trials", default=20, show_default=True, help="Trials to finish (complete, pruned or failed).")
@click.option("--parallel", default="auto", show_default=True, help="auto (one per GPU of the inventory, or per core without GPUs) or a number.")
@click.option("--sampler", default="tpe", show_default=True, help="tpe, random, grid, cmaes or qmc.")
@click.option("--pruner", default="asha", show_default=True, help="asha, hyperband, median or none.")
@click.option("--pruner-startup-trials", "n_startup_trials", type=click.IntRange(0),
              help="median: trials that finish before any is pruned (Optuna's n_startup_trials, default 3).")
@click.option("--pruner-warmup-steps", "n_warmup_steps", type=click.IntRange(0),
              help="median: steps of each trial never pruned (Optuna's n_warmup_steps, default 0).")
@click.option("--pruner-min-resource", "min_resource", type=click.IntRange(1),
              help="asha, hyperband: steps before the first rung (Optuna's min_resource, default 1).")
@click.option("--pruner-reduction-factor", "reduction_factor", type=click.IntRange(2),
              help="asha, hyperband: keep 1 in this many trials per rung (default 3).")
@click.option("--metric", default="val_loss", show_default=True, help="Run metric the objective reads.")
@click.option("--direction", default="minimize", show_default=True, type=click.Choice(["minimize", "maximize"]))
@click.option("--timeout", "timeout_s", type=float, help="Stop starting trials after this many seconds.")
@click.option("--study", "study_name", help="Study name (default: script name and time).")
@click.option("--resume", is_flag=True, help="Continue an existing study.")
@click.option("--seed", type=int, help="Sampler seed.")
@click.option("--gpus", "gpus_per_trial", default=0, show_default=True, help="GPUs per trial.")
@click.option("--target", default=DEFAULT_TARGET, show_default=True, help="Compute target for the trials.")
@click.option("--final-run", is_flag=True, help="Train once more with the best parameters.")
@click.option("--register", "register_as", help="Register the final run's model under this name (STAGING).")
@click.option("--artifact", "model_artifact", default="model", show_default=True, help="Final run's model artifact.")
@click.option("--flavor", help="Flavor of the registered model (guessed when omitted).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tune_run(script: str, args: tuple[str, ...], space_file: str, as_json: bool, parallel: str, **options) -> None:
    """Run (or resume) a study of SCRIPT over the search space."""
    from forgeml.tuning import TuneConfig, load_space, tune
    from forgeml.workspace import Workspace

    pruner_settings = {key: options.pop(key) for key in PRUNER_OPTIONS if options.get(key) is not None}
    for key in PRUNER_OPTIONS:
        options.pop(key, None)
    config = TuneConfig(script=script, args=list(args), space=load_space(space_file),
                        parallel=parallel, pruner_settings=pruner_settings, **options)
    result = tune(config, workspace=Workspace.find())
    if as_json:
        emit_json(result)
        return
    click.echo(f"study {result.study}: {result.complete} complete, {result.pruned} pruned, {result.failed} failed "
               f"in {result.elapsed_s:.1f}s")
    click.echo(f"best trial {result.best_trial}: {options['metric']} = {result.best_value} "
               f"with {json.dumps(result.best_params, sort_keys=True)}")
    if result.model_version is not None:
        click.echo(f"registered {config.register_as} v{result.model_version} in STAGING")


@tune_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tune_ls(as_json: bool) -> None:
    """List the workspace's studies."""
    from forgeml.tuning import list_studies

    rows = list_studies()
    emit_json(rows) if as_json else print_table(rows, ["name", "direction", "n_trials", "best_value", "best_params"])


@tune_group.command("show")
@click.argument("study")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tune_show(study: str, as_json: bool) -> None:
    """Show a study's trials, best parameters and parameter importances."""
    from forgeml.errors import ValidationError
    from forgeml.tuning import list_studies, param_importances, study_trials

    trials = study_trials(study)
    summary = next(s for s in list_studies() if s["name"] == study)
    try:
        importances = param_importances(study)
    except ValidationError as e:
        importances = {"unavailable": str(e)}
    if as_json:
        emit_json({"study": summary, "trials": trials.to_dict("records"), "importances": importances})
        return
    print_table(trials.to_dict("records"), title=f"study {study}")
    click.echo(f"best: {summary['best_value']} with {summary['best_params']}")
    for name, value in importances.items():
        click.echo(f"  {name:<20} {value if isinstance(value, str) else f'{value:.3f}'}")
