"""`forgeml evaluate MODEL@VERSION DATASET@VERSION`: metrics, slices, fairness, stored with the version."""

from __future__ import annotations

import click

from forgeml.cli.output import emit_json, print_table


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))


@click.command("evaluate")
@click.argument("model")
@click.argument("dataset")
@click.option("--target", required=True, help="Column holding the true values.")
@click.option("--task", type=click.Choice(["classification", "regression", "ranking"]), help="Default: inferred.")
@click.option("--slice", "slices", multiple=True, help="Column to report metrics per value of (repeatable).")
@click.option("--fairness", multiple=True, help="Sensitive column to report group fairness for (repeatable).")
@click.option("--query-column", help="Column grouping rows into queries (ranking).")
@click.option("-k", "k", default=10, show_default=True, help="Cut-off for NDCG@k and hit rate@k.")
@click.option("--challenger", help="Compare MODEL (champion) with this model on the same rows, with bootstrap CIs.")
@click.option("--importance", is_flag=True,
              help="Also compute global feature importance (mean |SHAP| and permutation), stored with the result.")
@click.option("--robustness", is_flag=True, help="Also score the model on noisy, missing and swapped inputs.")
@click.option("--find-slices", is_flag=True, help="Also report the worst slices over every feature column.")
@click.option("--plots", is_flag=True, help="Also store PNG and SVG charts as artifacts (digests in the result).")
@click.option("--n-boot", default=1000, show_default=True, help="Bootstrap resamples for --challenger.")
@click.option("--no-store", is_flag=True, help="Do not store the result with the model version.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def evaluate_cmd(model: str, dataset: str, target: str, task: str | None, slices: tuple[str, ...],
                 fairness: tuple[str, ...], query_column: str | None, k: int, challenger: str | None,
                 importance: bool, robustness: bool, find_slices: bool, plots: bool, n_boot: int, no_store: bool,
                 as_json: bool) -> None:
    """Evaluate MODEL (name@version|stage|alias) on DATASET (name@vN) and store the result with the version."""
    from forgeml.evaluation import compare, evaluate

    if challenger:
        result = compare(model, challenger, dataset, target, task=task, n_boot=n_boot, query_column=query_column,
                         importance=importance)
        if as_json:
            emit_json(result.to_dict())
            return
        print_table([{"metric": m.metric, "champion": _fmt(m.champion), "challenger": _fmt(m.challenger),
                      "difference": _fmt(m.difference),
                      "difference CI": "" if m.difference_ci is None else
                      f"[{m.difference_ci[0]:.4f}, {m.difference_ci[1]:.4f}]",
                      "P(challenger better)": _fmt(m.challenger_better_prob)} for m in result.metrics],
                    title=f"{result.champion} vs {result.challenger} on {result.dataset} ({result.rows} rows)")
        if result.importance:
            print_table([{"feature": r["feature"], "champion rank": r["champion_rank"],
                          "challenger rank": r["challenger_rank"],
                          "champion mean |SHAP|": _fmt(r["champion_mean_abs_shap"]),
                          "challenger mean |SHAP|": _fmt(r["challenger_mean_abs_shap"])} for r in result.importance],
                        title="feature importance, champion vs challenger")
        return
    result = evaluate(model, dataset, target, task=task, slices=list(slices), fairness=list(fairness), k=k,
                      query_column=query_column, importance=importance, robustness=robustness,
                      find_slices=find_slices, plots=plots, store=not no_store)
    if as_json:
        emit_json(result.to_dict())
        return
    print_table([{"metric": m, "value": _fmt(v)} for m, v in result.metrics.items()],
                title=f"{result.model} on {result.dataset} ({result.rows} rows, {result.task})")
    for column, rows in result.slices.items():
        names = list(rows[0]["metrics"]) if rows else []
        print_table([{column: r["value"], "rows": r["rows"], **{m: _fmt(r["metrics"][m]) for m in names}}
                     for r in rows], title=f"by {column}")
    for column, report in result.fairness.items():
        click.echo(f"fairness by {column}: demographic parity difference "
                   f"{_fmt(report['demographic_parity_difference'])}, equal opportunity difference "
                   f"{_fmt(report['equal_opportunity_difference'])}")
    if result.importance:
        print_table([{"feature": r["feature"], "mean |SHAP|": _fmt(r["mean_abs_shap"]),
                      f"permutation ({result.importance['metric']})": _fmt(r["permutation"])}
                     for r in result.importance["features"]],
                    title=f"feature importance ({result.importance['shap_method']} attributions)")
    _print_responsible(result)


def _print_responsible(result: object) -> None:
    """Print calibration, robustness, the worst slices and the stored charts of an evaluation."""
    cal = result.calibration
    if cal:
        click.echo(f"calibration: Brier {_fmt(cal['brier'])}, ECE {_fmt(cal['ece'])}")
    for kind, outcome in (result.robustness.get("perturbations") or {}).items():
        if "change" in outcome:
            changes = ", ".join(f"{m} {v:+.4f}" for m, v in outcome["change"].items() if isinstance(v, float))
            click.echo(f"under {kind}: {changes}")
        else:
            click.echo(f"under {kind}: {outcome.get('error') or outcome.get('skipped')}")
    if result.weak_slices:
        print_table([{"slice": s["slice"], "rows": s["rows"], "mean loss": _fmt(s["mean_loss"]),
                      "overall": _fmt(s["overall_loss"]), "t": _fmt(s["t"])} for s in result.weak_slices],
                    title="worst slices")
    for name, digest in result.plots.items():
        click.echo(f"chart {name}: artifact {digest}")
